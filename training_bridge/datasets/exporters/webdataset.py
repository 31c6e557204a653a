"""WebDataset tar shards for streaming training: one sample per pair, shards per split.

Shard `<split>-000000.tar` holds, per pair, `<key>.json` (the canonical record) and, with
images, `<key>.0.<ext>` and `<key>.1.<ext>` (candidate a and b as stored). The key is the pair
id, zero-padded, so `webdataset.WebDataset(urls)` groups the three files into one sample.
"""

from __future__ import annotations

from training_bridge.datasets.exporters.interface import (
    SPLITS,
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
    chunks_rebatched,
    image_extension,
)
from training_bridge.datasets.exporters.tarballs import ShardedTars

# The record columns this exporter reads (no JSON parsing: the line is stored as it is).
COLUMNS = ("pair_id", "split", "image_a_key", "image_b_key", "canonical")
CHUNK_RECORDS = 5_000
CHUNK_RECORDS_WITH_IMAGES = 64
SAMPLES_PER_SHARD = 10_000
SAMPLES_PER_SHARD_WITH_IMAGES = 1_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
) -> None:
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    per_shard = SAMPLES_PER_SHARD if images is None else SAMPLES_PER_SHARD_WITH_IMAGES
    shards = {
        split: ShardedTars(
            sink, f"{split}-{{:06d}}.tar", max_samples=per_shard, max_bytes=MAX_BYTES_PER_SHARD
        )
        for split in SPLITS
    }
    done = 0
    try:
        for rows in chunks_rebatched(records, size):
            data: list[bytes] = []
            if images is not None:
                data = images([key for row in rows for key in (row[2], row[3])])
            for index, (pair_id, split, key_a, key_b, line) in enumerate(rows):
                tar = shards[split]
                key = f"{pair_id:010d}"
                tar.current.add(f"{key}.json", line.encode())
                if images is not None:
                    tar.current.add(f"{key}.0.{image_extension(key_a)}", data[2 * index])
                    tar.current.add(f"{key}.1.{image_extension(key_b)}", data[2 * index + 1])
                tar.sample_done()
            done += len(rows)
            progress(done)
    except BaseException as error:
        for tar in shards.values():
            tar.close(error)
        raise
    for tar in shards.values():
        tar.close()
