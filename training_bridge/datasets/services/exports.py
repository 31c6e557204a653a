"""Exports of a frozen version: requested here, run as `cpu` tasks, streamed with bounded memory.

`dataset_export_request` records the wish (one row per version, format and images flag) and
queues the task once the version is frozen (at once, or when its freeze finishes).
`dataset_export_run` streams the version's canonical records in chunks from the database
through the format's exporter into local temp files, stores each finished file under the
version's prefix, and reports progress on the row. The same version always exports to the
same bytes; the JSONL export is checked against the version's content hash.

One run at a time: the run that claims an export owns it (`run_token`) and beats
(`heartbeat_at`) with every progress report. A second delivery of the task leaves an export
whose owner beat within RECOVERY_STALE_SECONDS alone and takes over a stale one (its worker
was killed); the older run, if it still lives, stops at its next report. An export queued or
running with no beat for that long (its message was lost with the broker) is published again
by `dataset_exports_recover` (services/recovery.py) or by asking for it again.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import stale_cutoff
from config.errors import Conflict, DomainError, NotFound, ValidationFailed
from training_bridge.datasets.exporters import exporter_for
from training_bridge.datasets.selectors.datasets import version_canonical_chunks
from training_bridge.datasets.selectors.version_votes import version_vote_chunks
from training_bridge.datasets.services.artifacts import (
    StorageImageReader,
    StorageSink,
    artifact_exists,
    artifact_open,
    artifact_put_file,
    export_workdir,
    storage_image_url_prefix,
    version_prefix,
)
from training_bridge.datasets.services.manifests import manifest_write
from training_bridge.models import DatasetExport, DatasetVersion
from training_bridge.publishing import DATASET_EXPORT_RUN, task_send_on_commit

log = logging.getLogger(__name__)

FORMATS = tuple(DatasetExport.Format.values)
PROGRESS_EVERY_SECONDS = 0.5


class ExportSuperseded(Exception):
    """Another run took the export over; this one stops without touching it."""


def _owner_alive(export: DatasetExport, now: datetime) -> bool:
    return (
        export.status == DatasetExport.Status.RUNNING
        and export.run_token is not None
        and export.heartbeat_at is not None
        and export.heartbeat_at >= stale_cutoff(now=now)
    )


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
        now = timezone.now()
        again = not created and (force or export.status == DatasetExport.Status.FAILED)
        # Asked again while queued, or running with no beat for long: its message may have been
        # lost with the broker, so it is published again (a live run is left alone).
        stuck = not (created or again or export.status == DatasetExport.Status.DONE)
        stuck = stuck and not _owner_alive(export, now)
        if created or again or stuck:
            export.status = DatasetExport.Status.QUEUED
            export.run_token = None
            export.heartbeat_at = now  # published now: the sweep waits a full period from here
            if again:
                export.records_done = 0
                export.error = ""
            export.save(
                update_fields=["status", "run_token", "heartbeat_at", "records_done", "error"]
            )
            if enqueue and version.status == DatasetVersion.Status.FROZEN:
                task_send_on_commit(DATASET_EXPORT_RUN, kwargs={"export_id": export.pk})
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
    """Ask for several formats at once (all of them by default)."""
    return [
        dataset_export_request(
            version_id=version_id, format=f, include_images=include_images, enqueue=enqueue
        )
        for f in (formats or FORMATS)
    ]


def _claim(export_id: int) -> tuple[DatasetExport, uuid.UUID | None]:
    """Own the export for this run; no token when it is done or another live run owns it."""
    token = uuid.uuid4()
    now = timezone.now()
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
        if _owner_alive(export, now):
            log.info("dataset.export.owned export=%s", export_id)
            return export, None
        if export.version.status != DatasetVersion.Status.FROZEN:
            raise Conflict(f"{export.version} is not frozen", field="version")
        export.status = DatasetExport.Status.RUNNING
        export.run_token = token
        export.heartbeat_at = now
        export.started_at = now
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
            if not owned.update(records_done=done, heartbeat_at=timezone.now()):
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
                image_url_prefix=storage_image_url_prefix(),
            )
            _card_and_votes(export, sink)
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


def version_votes_key(*, version: DatasetVersion) -> str:
    """Where a version's votes table (every counted judgment, stored side order) is kept."""
    prefix = version_prefix(dataset_name=version.dataset.name, number=version.number)
    return f"{prefix}/cache/votes.parquet"


def version_votes_stored(*, version: DatasetVersion, path: Path) -> None:
    """The version's stored votes at `path`, made if missing.

    The freeze stores them from the votes it counted (services/freezing.py); a version frozen
    before it did so has none until its first export reads them from the database here
    (`version_vote_chunks`, the version's vote rules) and stores them for the next."""
    from training_bridge.datasets.exporters import votes_table

    key = version_votes_key(version=version)
    if artifact_exists(key=key):
        with artifact_open(key=key) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out)
        return
    votes_table.stored_write(path, version_vote_chunks(version=version))
    artifact_put_file(key=key, path=path)


def _card_and_votes(export: DatasetExport, sink: StorageSink) -> None:
    """Beside the format's files: `votes.parquet` (every counted judgment, in the folder's side
    order, from the version's stored votes) and the dataset card `README.md` whose YAML header
    makes the folder a Hugging Face dataset as it is.

    Arrow's pool keeps the memory the exporter freed (~70 MB after a Parquet export); it goes
    back to the OS first, so the votes table does not add to the export's peak
    (bench/export/RESULTS.md)."""
    import pyarrow as pa

    from training_bridge.datasets.exporters import card, votes_table

    pa.default_memory_pool().release_unused()
    version = export.version
    stored = sink.workdir / "votes-stored.parquet"
    version_votes_stored(version=version, path=stored)
    with sink.file(votes_table.FILE_NAME) as path:
        votes_table.folder_write(path, stored, shown=export.format != DatasetExport.Format.JSONL)
    stored.unlink()
    features = card.FEATURES.get(export.format)
    if export.format == DatasetExport.Format.PARQUET:
        features = card.arrow_features(exporter_for("parquet").SCHEMA)
    text = card.dataset_card(
        format=export.format,
        manifest=version.manifest,
        files=[artifact["name"] for artifact in sink.artifacts],
        license=settings.DATASET_CARD_LICENSE,
        features=features,
        vote_features=card.arrow_features(votes_table.SCHEMA),
        votes_file=votes_table.FILE_NAME,
    )
    with sink.file(card.FILE_NAME) as path:
        path.write_text(text, encoding="utf-8")


def export_folder(*, format: str, include_images: bool) -> str:
    """The export's folder under the version's prefix (`parquet`, `parquet-keys`, ...)."""
    if format == DatasetExport.Format.JSONL:
        return "jsonl"
    return f"{format}{'' if include_images else '-keys'}"


def _check_content_hash(version: DatasetVersion, artifacts: list[dict[str, Any]]) -> None:
    (jsonl,) = [a for a in artifacts if a["name"] == "records.jsonl"]
    if jsonl["sha256"] != version.content_hash:
        raise Conflict(
            f"the exported records hash to {jsonl['sha256']}, not to the version's content "
            f"hash {version.content_hash}: its records changed after freezing",
            field="version",
        )
