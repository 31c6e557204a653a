"""Canonical JSONL: one canonical record per line, in canonical order, in one file.

The file's sha256 is the version's content hash (the service checks it after writing), so its
records keep the stored side order (candidate a first), not the shown order of `sides.py`.
"""

from __future__ import annotations

from training_bridge.datasets.exporters.interface import (
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
)

FILE_NAME = "records.jsonl"
# The record columns this exporter reads: the canonical lines only.
COLUMNS = ("canonical",)
CHUNK_RECORDS = 10_000
CHUNK_RECORDS_WITH_IMAGES = CHUNK_RECORDS  # never carries image bytes


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
    image_url_prefix: str = "",
) -> None:
    done = 0
    with sink.file(FILE_NAME) as path:
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for chunk in records:
                out.write("\n".join(chunk))
                out.write("\n")
                done += len(chunk)
                progress(done)
