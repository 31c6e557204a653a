"""What an exporter is given: record chunks, an artifact sink, an image reader, a progress hook."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

# Chunks of records in the version's canonical order: canonical JSON lines (no newline), or
# tuples of the record columns an exporter names in its COLUMNS.
RecordChunks = Iterable[list]
# Reads the bytes of storage keys, in the order given.
ImageReader = Callable[[list[str]], list[bytes]]
# Called with the number of records written so far.
Progress = Callable[[int], None]

SPLITS = ("train", "val", "test")


class ArtifactSink(Protocol):
    def file(self, name: str) -> AbstractContextManager[Path]:
        """A local path to write `name` (relative to the export's folder) into; when the
        block ends the file is stored and listed as an artifact."""


def image_extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else "bin"


def chunks_rebatched(chunks: RecordChunks, size: int) -> Iterator[list]:
    """Re-cut record chunks to `size` records (the last one shorter), keeping the order."""
    buffer: list = []
    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= size:
            yield buffer[:size]
            del buffer[:size]
    if buffer:
        yield buffer
