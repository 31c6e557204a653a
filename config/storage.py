"""Local files that are whole or absent: the default storage of the demo and of local setups.

Django's FileSystemStorage writes a file in place under its final name, so a write that fails
midway (a full disk, a killed process, a power cut before the data reached the disk) leaves
the first bytes under that name; an empty or cut-off file then looks like a stored one. Here
every file is written to a temporary name in its own folder, flushed and fsynced, and only
then given its name (a hard link, or a rename where overwriting is allowed), and the folder
is fsynced so that the name survives a crash too. A failed write removes its temporary file
and leaves nothing under the name. Content-hash keys that must replace whatever lies at
their name use `file_write_atomic` directly (generation_workers/services/images.py).
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.core.files.storage import FileSystemStorage

# Filesystems that cannot hard-link: the name is then given by a rename after a check.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _temporary_written(directory: str, stem: str, chunks: Iterable[bytes | str]) -> str:
    """The chunks in a fresh file beside the target, flushed to the disk; its path.

    Created with mode 0o666 through the umask, as Django creates its files, and removed
    again if any step fails."""
    path = os.path.join(directory, f".{stem}.{uuid.uuid4().hex}.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk.encode() if isinstance(chunk, str) else chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove_quietly(path)
        raise
    return path


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def directory_fsync(directory: str) -> None:
    """Make the folder's entries (a new or renamed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_write_atomic(path: str | Path, chunks: Iterable[bytes | str]) -> None:
    """Write the file at `path` whole, replacing whatever lies there (a partial file too) in
    one rename: a reader sees the old file or the new one, never a mix or a prefix."""
    path = os.fspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    temporary = _temporary_written(directory, os.path.basename(path), chunks)
    try:
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    directory_fsync(directory)


class AtomicFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose files appear under their name only once complete and on disk.

    Naming follows FileSystemStorage: a taken name gets another one (`get_available_name`)
    unless `allow_overwrite` is set, in which case the new file replaces the old in one rename.
    """

    def _save(self, name: str, content) -> str:
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        if self.directory_permissions_mode is not None:
            # The same workaround as FileSystemStorage: makedirs' mode skips the parents.
            old_umask = os.umask(0o777 & ~self.directory_permissions_mode)
            try:
                os.makedirs(directory, self.directory_permissions_mode, exist_ok=True)
            finally:
                os.umask(old_umask)
        else:
            os.makedirs(directory, exist_ok=True)
        temporary = _temporary_written(directory, os.path.basename(full_path), content.chunks())
        try:
            full_path = self._name_give(temporary, name, full_path)
        finally:
            _remove_quietly(temporary)
        directory_fsync(os.path.dirname(full_path))
        if self.file_permissions_mode is not None:
            os.chmod(full_path, self.file_permissions_mode)
        self._ensure_location_group_id(full_path)
        return os.path.relpath(full_path, self.location).replace("\\", "/")

    def _name_give(self, temporary: str, name: str, full_path: str) -> str:
        """Give the written file its name (another free one if taken); the path it got."""
        while True:
            if getattr(self, "_allow_overwrite", False):
                os.replace(temporary, full_path)
                return full_path
            try:
                os.link(temporary, full_path)  # fails if the name is taken, unlike a rename
                return full_path
            except FileExistsError:
                name = self.get_available_name(name)
                full_path = self.path(name)
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                if not os.path.exists(full_path):
                    os.rename(temporary, full_path)
                    return full_path
                name = self.get_available_name(name)
                full_path = self.path(name)
