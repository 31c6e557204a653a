"""HPSv3-style JSON: `[{"prompt", "path1" (the preferred image), "path2", "confidence"}]`.

One JSON list per split (`<split>.json`). Only pairs with a winner are written (ties and
both-wrong pairs have no preferred image); `confidence` is the record's confidence: the
aggregator's confidence in the label (the vote share for `majority`, the posterior probability
for a label model, 1 for an answer settled by review), so HPSv3's confidence-weighted loss and
its threshold apply as intended (versions frozen before records carried a confidence give
their agreement). With
images, paths are `images/<sha[:2]>/<sha>.<ext>` inside the image folder, shipped as tar shards
`images-00000.tar` ... (extract them side by side to get the folder); without images, paths are
the storage keys of the default storage.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TextIO

from training_bridge.datasets.exporters.interface import (
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
    chunks_rebatched,
    image_extension,
)
from training_bridge.datasets.exporters.tarballs import ShardedTars

# The record columns this exporter reads: the canonical lines only.
COLUMNS = ("canonical",)
CHUNK_RECORDS = 5_000
CHUNK_RECORDS_WITH_IMAGES = 64
IMAGES_PER_SHARD = 2_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024


def image_path(candidate: dict) -> str:
    sha = candidate["sha256"]
    return f"images/{sha[:2]}/{sha}.{image_extension(candidate['key'])}"


class _SplitLists:
    """One streamed JSON list per split, opened on its first item."""

    def __init__(self, sink: ArtifactSink, stack: ExitStack) -> None:
        self.sink = sink
        self.stack = stack
        self.files: dict[str, TextIO] = {}

    def add(self, split: str, item: dict) -> None:
        out = self.files.get(split)
        if out is None:
            path = self.stack.enter_context(self.sink.file(f"{split}.json"))
            out = self.stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
            self.files[split] = out
            out.write("[\n")
        else:
            out.write(",\n")
        out.write(json.dumps(item, ensure_ascii=False))

    def finish(self) -> None:
        for out in self.files.values():
            out.write("\n]\n")


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
) -> None:
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    tars = ShardedTars(
        sink, "images-{:05d}.tar", max_samples=IMAGES_PER_SHARD, max_bytes=MAX_BYTES_PER_SHARD
    )
    in_shard: set[str] = set()
    done = 0
    with ExitStack() as stack:
        lists = _SplitLists(sink, stack)
        try:
            for lines in chunks_rebatched(records, size):
                winners = []
                for line in lines:
                    record = json.loads(line)
                    if record["label"] in ("a", "b"):
                        winners.append(record)
                if images is not None and winners:
                    keys = [c["key"] for record in winners for c in record["candidates"]]
                    data = dict(zip(keys, images(keys), strict=True))
                for record in winners:
                    first, second = record["candidates"]
                    preferred, other = (
                        (first, second) if record["label"] == "a" else (second, first)
                    )
                    if images is None:
                        path1, path2 = preferred["key"], other["key"]
                    else:
                        path1, path2 = image_path(preferred), image_path(other)
                        for candidate, path in ((preferred, path1), (other, path2)):
                            if not tars.is_open:
                                in_shard.clear()  # a new shard: dedupe within it only
                            if path not in in_shard:
                                tars.current.add(path, data[candidate["key"]])
                                in_shard.add(path)
                                tars.sample_done()
                    lists.add(
                        record["split"],
                        {
                            "prompt": record["prompt"]["text"],
                            "path1": path1,
                            "path2": path2,
                            "confidence": record.get("confidence", record["agreement"]),
                        },
                    )
                done += len(lines)
                progress(done)
            lists.finish()
        except BaseException as error:
            tars.close(error)
            raise
    tars.close()
