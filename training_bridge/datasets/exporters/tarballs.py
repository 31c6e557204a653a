"""Deterministic tar files: fixed member metadata, so the same members give the same bytes."""

from __future__ import annotations

import io
import tarfile
from contextlib import ExitStack
from pathlib import Path


class TarWriter:
    """A plain (uncompressed) USTAR tar with mtime 0, owner root and mode 0644 for every member."""

    def __init__(self, path: Path) -> None:
        self._tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)
        self.bytes = 0
        self.members = 0

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))
        self.bytes += len(data) + 512
        self.members += 1

    def close(self) -> None:
        self._tar.close()


class ShardedTars:
    """Consecutive tar shards named by `pattern.format(shard)`, each closed at a member count
    or a byte size (so boundaries depend on the content alone), stored through the sink."""

    def __init__(self, sink, pattern: str, *, max_samples: int, max_bytes: int) -> None:
        self.sink = sink
        self.pattern = pattern
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.shard = -1
        self.samples = 0
        self._stack: ExitStack | None = None
        self._tar: TarWriter | None = None

    @property
    def is_open(self) -> bool:
        return self._tar is not None

    @property
    def current(self) -> TarWriter:
        if self._tar is None:
            self.shard += 1
            self._stack = ExitStack()
            path = self._stack.enter_context(self.sink.file(self.pattern.format(self.shard)))
            self._tar = TarWriter(path)
            self.samples = 0
        return self._tar

    def sample_done(self) -> None:
        """One sample is complete: close the shard if it is full."""
        self.samples += 1
        if self.samples >= self.max_samples or self._tar.bytes >= self.max_bytes:
            self.close()

    def close(self, error: BaseException | None = None) -> None:
        if self._tar is not None:
            self._tar.close()
            if error is None:
                self._stack.close()
            else:
                self._stack.__exit__(type(error), error, error.__traceback__)
            self._tar = None
            self._stack = None
