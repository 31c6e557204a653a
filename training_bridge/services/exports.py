"""Exports of a frozen version: requested here, run as `cpu` tasks, streamed with bounded memory.

`dataset_export_request` records the wish (one row per version, format and images flag) and
queues the task once the version is frozen (at once, or when its freeze finishes).
`dataset_export_run` streams the version's canonical records in chunks from the database
through the format's exporter into local temp files, stores each finished file under the
version's prefix, and reports progress on the row. The same version always exports to the
same bytes; the JSONL export is checked against the version's content hash.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, DomainError, NotFound, ValidationFailed
from training_bridge.exporters import exporter_for
from training_bridge.models import DatasetExport, DatasetVersion
from training_bridge.selectors.datasets import version_canonical_chunks
from training_bridge.services.artifacts import (
    StorageImageReader,
    StorageSink,
    export_workdir,
    version_prefix,
)
from training_bridge.services.manifests import manifest_write

log = logging.getLogger(__name__)

FORMATS = tuple(DatasetExport.Format.values)
PROGRESS_EVERY_SECONDS = 0.5


class ExportSuperseded(Exception):
    """Another run took the export over; this one stops without touching it."""


def dataset_export_request(
    *,
    version_id: int,
    format: str,
    include_images: bool = True,
    force: bool = False,
    enqueue: bool = True,
) -> DatasetExport:
    """Ask for an export; returns the (new or existing) export row. Idempotent per key.

    With `enqueue=False` nothing is queued: the caller runs `dataset_export_run` itself.
    """
    from training_bridge.tasks import dataset_export_task

    if format not in FORMATS:
        raise ValidationFailed(
            f"unknown format {format!r}; choose from {', '.join(FORMATS)}", field="format"
        )
    if not isinstance(include_images, bool):
        raise ValidationFailed("must be true or false", field="include_images")
    if format == DatasetExport.Format.JSONL:
        include_images = False  # JSONL names images by storage key, never carries bytes
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"no dataset version {version_id}", field="version")
        if version.status not in (DatasetVersion.Status.FROZEN, DatasetVersion.Status.FREEZING):
            raise Conflict(
                f"{version} is {version.status}: freeze it before exporting", field="version"
            )
        export, created = DatasetExport.objects.get_or_create(
            version=version, format=format, include_images=include_images
        )
        again = not created and (force or export.status == DatasetExport.Status.FAILED)
        if again:
            export.status = DatasetExport.Status.QUEUED
            export.records_done = 0
            export.error = ""
            export.run_token = None
            export.save(update_fields=["status", "records_done", "error", "run_token"])
        if enqueue and (created or again) and version.status == DatasetVersion.Status.FROZEN:
            dataset_export_task.delay_on_commit(export_id=export.pk)
    if created or again:
        log.info("dataset.export.requested export=%s format=%s", export.pk, format)
    return export


def dataset_exports_request(
    *,
    version_id: int,
    formats: list[str] | None = None,
    include_images: bool = True,
    enqueue: bool = True,
) -> list[DatasetExport]:
    """Ask for several formats at once (all four by default)."""
    return [
        dataset_export_request(
            version_id=version_id, format=f, include_images=include_images, enqueue=enqueue
        )
        for f in (formats or FORMATS)
    ]


def _claim(export_id: int) -> tuple[DatasetExport, uuid.UUID | None]:
    token = uuid.uuid4()
    with transaction.atomic():
        export = (
            DatasetExport.objects.select_for_update()
            .select_related("version__dataset")
            .filter(pk=export_id)
            .first()
        )
        if export is None:
            raise NotFound(f"no dataset export {export_id}", field="export")
        if export.status == DatasetExport.Status.DONE:
            return export, None
        if export.version.status != DatasetVersion.Status.FROZEN:
            raise Conflict(f"{export.version} is not frozen", field="version")
        export.status = DatasetExport.Status.RUNNING
        export.run_token = token
        export.started_at = timezone.now()
        export.finished_at = None
        export.records_total = export.version.record_count
        export.records_done = 0
        export.error = ""
        export.save()
    return export, token


def dataset_export_run(*, export_id: int) -> DatasetExport:
    """Run one export in this process (the task and the command call this). Idempotent."""
    export, token = _claim(export_id)
    if token is None:
        return export
    try:
        return _run(export, token)
    except ExportSuperseded:
        log.warning("dataset.export.superseded export=%s", export_id)
        return DatasetExport.objects.get(pk=export_id)
    except Exception as exc:
        message = str(exc) if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        DatasetExport.objects.filter(pk=export_id, run_token=token).update(
            status=DatasetExport.Status.FAILED,
            error=message[:4000],
            run_token=None,
            finished_at=timezone.now(),
        )
        log.warning("dataset.export.failed export=%s error=%s", export_id, message[:200])
        raise


def _run(export: DatasetExport, token: uuid.UUID) -> DatasetExport:
    started = time.monotonic()
    version = export.version
    exporter = exporter_for(export.format)
    owned = DatasetExport.objects.filter(pk=export.pk, run_token=token)
    last_report = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last_report[0] >= PROGRESS_EVERY_SECONDS or done >= version.record_count:
            last_report[0] = now
            if not owned.update(records_done=done):
                raise ExportSuperseded(export.pk)

    prefix = version_prefix(dataset_name=version.dataset.name, number=version.number)
    chunk = exporter.CHUNK_RECORDS_WITH_IMAGES if export.include_images else exporter.CHUNK_RECORDS
    images = StorageImageReader() if export.include_images else None
    try:
        with export_workdir() as workdir:
            folder = export_folder(format=export.format, include_images=export.include_images)
            sink = StorageSink(prefix=f"{prefix}/{folder}", workdir=workdir)
            exporter.export(
                records=version_canonical_chunks(
                    version_id=version.pk, chunk_size=chunk, columns=exporter.COLUMNS
                ),
                sink=sink,
                images=images,
                progress=progress,
            )
    finally:
        if images is not None:
            images.close()
    artifacts = sorted(sink.artifacts, key=lambda a: a["key"])
    if export.format == DatasetExport.Format.JSONL:
        _check_content_hash(version, artifacts)
    finished = owned.update(
        status=DatasetExport.Status.DONE,
        artifacts=artifacts,
        records_done=version.record_count,
        finished_at=timezone.now(),
        run_token=None,
    )
    if not finished:
        raise ExportSuperseded(export.pk)
    manifest_write(version_id=version.pk)
    seconds = time.monotonic() - started
    log.info(
        "dataset.export.done export=%s format=%s records=%s seconds=%.2f rate=%.0f",
        export.pk,
        export.format,
        version.record_count,
        seconds,
        version.record_count / seconds if seconds else 0,
    )
    export.refresh_from_db()
    return export


def export_folder(*, format: str, include_images: bool) -> str:
    """The export's folder under the version's prefix (`parquet`, `parquet-keys`, ...)."""
    if format == DatasetExport.Format.JSONL:
        return "jsonl"
    return f"{format}{'' if include_images else '-keys'}"


def _check_content_hash(version: DatasetVersion, artifacts: list[dict[str, Any]]) -> None:
    (jsonl,) = artifacts
    if jsonl["sha256"] != version.content_hash:
        raise Conflict(
            f"the exported records hash to {jsonl['sha256']}, not to the version's content "
            f"hash {version.content_hash}: its records changed after freezing",
            field="version",
        )
