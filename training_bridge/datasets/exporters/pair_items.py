"""What the JSON pair formats share (`hps`, `openrlhf`, `arena`): one item per selected record,
written to a file per split, with the images in a folder of tar shards named by checksum.

With images, an item names an image by `images/<sha[:2]>/<sha>.<ext>`, relative to the export
folder; the images are shipped in `images-00000.tar`, ... whose members are those paths (each
image once per shard), so extracting the tars in the folder makes every path resolve. Without
images, an item names the image by its storage key (itself a content hash). Either way the
item also carries the image's sha256.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

CHUNK_RECORDS = 5_000
CHUNK_RECORDS_WITH_IMAGES = 64
IMAGES_PER_SHARD = 2_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024

# (the record, {candidate key: its path in the export}) -> the item
ItemBuilder = Callable[[dict, dict[str, str]], dict]


def image_path(candidate: dict) -> str:
    sha = candidate["sha256"]
    return f"images/{sha[:2]}/{sha}.{image_extension(candidate['key'])}"


class SplitFiles:
    """One streamed file per split, opened on its first item: a JSON list (`<split>.json`) or
    JSON lines (`<split>.jsonl`)."""

    def __init__(self, sink: ArtifactSink, stack: ExitStack, *, lines: bool) -> None:
        self.sink = sink
        self.stack = stack
        self.lines = lines
        self.files: dict[str, TextIO] = {}

    def add(self, split: str, item: dict) -> None:
        out = self.files.get(split)
        text = json.dumps(item, ensure_ascii=False)
        if out is None:
            name = f"{split}.jsonl" if self.lines else f"{split}.json"
            path = self.stack.enter_context(self.sink.file(name))
            out = self.stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
            self.files[split] = out
            out.write(text if self.lines else "[\n" + text)
        else:
            out.write(("\n" if self.lines else ",\n") + text)

    def finish(self) -> None:
        for out in self.files.values():
            out.write("\n" if self.lines else "\n]\n")


def export_items(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
    keep: Callable[[dict], bool],
    item: ItemBuilder,
    lines: bool,
) -> None:
    """Write `item(record, paths)` for each record `keep` selects, in the records' order."""
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    tars = ShardedTars(
        sink, "images-{:05d}.tar", max_samples=IMAGES_PER_SHARD, max_bytes=MAX_BYTES_PER_SHARD
    )
    in_shard: set[str] = set()
    done = 0
    with ExitStack() as stack:
        files = SplitFiles(sink, stack, lines=lines)
        try:
            for chunk in chunks_rebatched(records, size):
                kept = [record for line in chunk if keep(record := json.loads(line))]
                data: dict[str, bytes] = {}
                if images is not None and kept:
                    keys = [c["key"] for record in kept for c in record["candidates"]]
                    data = dict(zip(keys, images(keys), strict=True))
                for record in kept:
                    paths = {}
                    for candidate in record["candidates"]:
                        if images is None:
                            paths[candidate["key"]] = candidate["key"]
                            continue
                        path = image_path(candidate)
                        if not tars.is_open:
                            in_shard.clear()  # a new shard: dedupe within it only
                        if path not in in_shard:
                            tars.current.add(path, data[candidate["key"]])
                            in_shard.add(path)
                            tars.sample_done()
                        paths[candidate["key"]] = path
                    files.add(record["split"], item(record, paths))
                done += len(chunk)
                progress(done)
            files.finish()
        except BaseException as error:
            tars.close(error)
            raise
    tars.close()
