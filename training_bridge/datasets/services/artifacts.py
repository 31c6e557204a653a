"""Artifact files in the default storage: exact keys under a version's prefix, with size and
sha256; image bytes read back for exports; download URLs.

Keys are fixed (`datasets/<dataset>/v<number>/<format>/<file>`), so a re-run of an export
replaces its files instead of adding renamed copies. On S3 a download is a presigned URL; on
local storage it is the authenticated download view.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from config.errors import ValidationFailed
from config.stored_files import storage_is_s3

log = logging.getLogger(__name__)

IMAGE_READ_THREADS = 8


def artifact_storage() -> Storage:
    return storages["default"]


def storage_image_url_prefix() -> str:
    """What an image's storage key is appended to for a lasting URL of it (the keys-only
    Parquet's `image_<n>_url`): `s3://<bucket>/[<location>/]` on S3, else the `file://` URL of
    the local storage's folder. Never a presigned URL: those expire, and the export's bytes
    must not depend on when it ran."""
    storage = artifact_storage()
    if storage_is_s3(storage):
        location = storage.location.strip("/")
        return f"s3://{storage.bucket_name}/" + (f"{location}/" if location else "")
    return Path(storage.location).resolve().as_uri() + "/"


def version_prefix(*, dataset_name: str, number: int) -> str:
    return f"datasets/{dataset_name}/v{number}"


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def _store(storage: Storage, key: str, content: File) -> None:
    if storage.exists(key):
        storage.delete(key)
    saved = storage.save(key, content)
    if saved != key:
        raise RuntimeError(f"the storage saved {key!r} as {saved!r}")


def artifact_put_file(*, key: str, path: Path) -> dict[str, Any]:
    """Store a local file under exactly `key`; returns {key, size, sha256}."""
    storage = artifact_storage()
    sha256 = _file_sha256(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        _store(storage, key, File(handle, name=key))
    log.info("dataset.artifact.stored key=%s size=%s", key, size)
    return {"key": key, "size": size, "sha256": sha256}


def artifact_put_bytes(*, key: str, data: bytes) -> dict[str, Any]:
    _store(artifact_storage(), key, ContentFile(data, name=key))
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class StorageSink:
    """The exporters' ArtifactSink: local temp files, stored under `prefix` when complete."""

    def __init__(self, *, prefix: str, workdir: Path) -> None:
        self.prefix = prefix.rstrip("/")
        self.workdir = workdir
        self.artifacts: list[dict[str, Any]] = []

    @contextmanager
    def file(self, name: str) -> Iterator[Path]:
        path = self.workdir / name.replace("/", "__")
        try:
            yield path
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        artifact = artifact_put_file(key=f"{self.prefix}/{name}", path=path)
        artifact["name"] = name
        self.artifacts.append(artifact)
        path.unlink(missing_ok=True)


@contextmanager
def export_workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spatialprefs-export-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class StorageImageReader:
    """Reads image bytes from the default storage, several at a time, in the order asked.

    On S3 the threads share one boto3 client (clients are thread-safe; the storage's cached
    bucket resource is not).
    """

    def __init__(self, *, threads: int = IMAGE_READ_THREADS) -> None:
        self.storage = artifact_storage()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export-images")
        self._s3 = None
        if storage_is_s3(self.storage):
            from storages.utils import clean_name

            self._s3 = self.storage.connection.meta.client
            self._s3_name = lambda key: self.storage._normalize_name(clean_name(key))

    def _read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._s3 is not None:
                answer = self._s3.get_object(
                    Bucket=self.storage.bucket_name, Key=self._s3_name(key)
                )
                return answer["Body"].read()
            with self.storage.open(key, "rb") as handle:
                return handle.read()
        except (OSError, ClientError, BotoCoreError) as exc:
            raise ValidationFailed(
                f"image {key!r} cannot be read from the storage: {exc}", field="images"
            ) from exc

    def __call__(self, keys: list[str]) -> list[bytes]:
        return list(self.pool.map(self._read, keys))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def artifact_exists(*, key: str) -> bool:
    return artifact_storage().exists(key)


def artifact_open(*, key: str) -> File:
    return artifact_storage().open(key, "rb")


def artifact_presigned_url(*, key: str, filename: str) -> str:
    """A time-limited S3 URL that downloads `key` as `filename`."""
    storage = artifact_storage()
    return storage.url(
        key, parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'}
    )
