"""Candidate images in the default storage (S3 or local files), under content-hash keys.

A key is `candidates/<sha256[:2]>/<sha256>.<ext>` of the encoded bytes, so identical bytes are
stored once and a re-render after a crash lands on the key it would have had. A key names
bytes, it does not prove them: a file found at a key is kept only if it hashes to the key,
and `candidate_image_store` returns only once the bytes are known to be stored whole (the
caller then marks the candidate done).
"""

import hashlib
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage

from config.storage import file_write_atomic

KEY_PREFIX = "candidates"
READ_CHUNK = 1024 * 1024


class StoredBytesDiffer(OSError):
    """The file read back from the storage is not the bytes written (not a transient error:
    the items fail with it, and a retry writes them again)."""


def candidate_image_key(*, content_sha256: str, fmt: str) -> str:
    return f"{KEY_PREFIX}/{content_sha256[:2]}/{content_sha256}.{fmt}"


def candidate_image_store(*, data: bytes, fmt: str) -> tuple[str, str]:
    """Store the bytes under their content key; return (key, sha256) once they are stored.

    Local files: a file already at the key is trusted only if its bytes hash to the key (a
    full disk or a crash may have left an empty or cut-off one); otherwise the bytes are
    written atomically over it (config/storage.py) and read back. S3: one PUT, no existence
    check first (it saves a round trip per image): a PUT replaces the object whole or not at
    all, and botocore sends a checksum of the body that S3 verifies before it answers, so a
    successful PUT is the proof.
    """
    content_sha256 = hashlib.sha256(data).hexdigest()
    key = candidate_image_key(content_sha256=content_sha256, fmt=fmt)
    if isinstance(default_storage, FileSystemStorage):
        _local_store(Path(default_storage.path(key)), data, content_sha256)
    else:
        # `_save` is the storage's write without the free-name search `save` does first; S3's
        # ignores file_overwrite there and writes the key itself.
        saved = default_storage._save(key, ContentFile(data))
        if saved != key:
            raise StoredBytesDiffer(f"the storage wrote {saved!r} instead of {key!r}")
    return key, content_sha256


def _local_store(path: Path, data: bytes, content_sha256: str) -> None:
    if _file_sha256(path) == content_sha256:
        return  # these exact bytes are there already
    file_write_atomic(path, [data])
    found = _file_sha256(path)
    if found != content_sha256:
        raise StoredBytesDiffer(
            f"{path.name} reads back as {found or 'nothing'} after writing {len(data)} bytes"
        )


def _file_sha256(path: Path) -> str | None:
    """The sha256 of the file's bytes, None if there is no file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()
