"""Freezing a version: select, aggregate, split and snapshot its records, then hash them.

One pass over the selection (`selection_records`) writes the records in batches, each batch in
its own short transaction, and feeds the content hash and the composition counts. The run owns
the version through `freeze_token` and beats (`freeze_heartbeat_at`) with every batch. A
second delivery of the task leaves a version whose owner beat within RECOVERY_STALE_SECONDS
alone, and takes over a stale one (the older run, if it still lives, stops at its next batch),
so two runs never mix their rows. The same pass writes the version's votes table (every counted
judgment, `exporters/votes_table.py`) from the votes the records were aggregated from, a row
group per VOTE_CHUNK_ROWS, and stores it (`version_votes_key`) while the run still owns the
version, just before it is marked frozen: its exports convert that file and never read the
judgments again. A freeze with no beat for that long (its message was lost
with the broker, its worker was killed) is published again by `dataset_versions_recover`
(services/recovery.py). Finalising (status frozen, hash,
manifest) is one conditional update; from then on the services refuse changes and, on
PostgreSQL, triggers refuse them too.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.services.quality import annotators_model_scores_record
from config.celery import stale_cutoff
from config.errors import DomainError, NotFound, ValidationFailed
from training_bridge.datasets.aggregation.records import Composition, ContentHasher, canonical_line
from training_bridge.datasets.exporters.votes_table import StoredWriter, VoteColumns
from training_bridge.datasets.selectors.selection import SelectionStats, selection_records_voted
from training_bridge.datasets.selectors.version_votes import record_votes_add
from training_bridge.datasets.services.artifacts import artifact_put_file, export_workdir
from training_bridge.datasets.services.exports import version_votes_key
from training_bridge.datasets.services.manifests import manifest_build, manifest_write
from training_bridge.datasets.services.specs import ResolvedSpecs, dataset_specs_resolve
from training_bridge.models import DatasetExport, DatasetRecord, DatasetVersion
from training_bridge.publishing import DATASET_EXPORT_RUN, task_send

log = logging.getLogger(__name__)

BATCH_RECORDS = 2000
VOTE_CHUNK_ROWS = 16_384


class FreezeSuperseded(Exception):
    """Another run claimed the version; this one stops without touching it."""


def _claim(version_id: int) -> tuple[DatasetVersion, uuid.UUID | None]:
    """Own the version for this run; no token when it is frozen or a live run owns it."""
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        version = (
            DatasetVersion.objects.select_for_update()
            .select_related("dataset")
            .filter(pk=version_id)
            .first()
        )
        if version is None:
            raise NotFound(f"no dataset version {version_id}", field="version")
        if version.status == DatasetVersion.Status.FROZEN:
            return version, None
        beat = version.freeze_heartbeat_at
        if version.freeze_token is not None and beat is not None and beat >= stale_cutoff(now=now):
            log.info("dataset.freeze.owned version=%s", version_id)
            return version, None
        version.status = DatasetVersion.Status.FREEZING
        version.freeze_token = token
        version.freeze_heartbeat_at = now
        version.error = ""
        version.save(update_fields=["status", "freeze_token", "freeze_heartbeat_at", "error"])
        # Rows of an earlier, interrupted run.
        DatasetRecord.objects.filter(version_id=version_id).delete()
    return version, token


def _owned(version_id: int, token: uuid.UUID) -> None:
    """Inside a transaction: lock the version and make sure this run still owns it."""
    owner = (
        DatasetVersion.objects.select_for_update()
        .filter(pk=version_id, status=DatasetVersion.Status.FREEZING)
        .values_list("freeze_token", flat=True)
        .first()
    )
    if owner != token:
        raise FreezeSuperseded(version_id)


# The record columns, in the order `_record_row` gives them.
RECORD_COLUMNS = (
    "version_id", "pair_id", "position", "split", "label", "votes", "agreement",
    "intended_winner_id", "prompt_id", "group_key", "image_a_key", "image_b_key", "canonical",
)  # fmt: skip


def _write(version_id: int, token: uuid.UUID, batch: list[tuple]) -> None:
    """Store one batch of records in a short transaction, if this run still owns the version.

    The rows go in through COPY: long JSON text makes multi-row INSERTs (and their parameter
    escaping) several times slower.
    """
    with transaction.atomic():
        _owned(version_id, token)
        DatasetVersion.objects.filter(pk=version_id).update(freeze_heartbeat_at=timezone.now())
        table = DatasetRecord._meta.db_table
        columns = ", ".join(RECORD_COLUMNS)
        votes = RECORD_COLUMNS.index("votes")
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row((*row[:votes], json.dumps(row[votes]), *row[votes + 1 :]))
    batch.clear()


def _record_row(version_id: int, position: int, record: dict[str, Any], line: str) -> tuple:
    candidates = record["candidates"]
    intended = record["intended_winner"]
    return (
        version_id,
        record["pair_id"],
        position,
        record["split"],
        record["label"],
        record["votes"],
        record["agreement"],
        None if intended is None else candidates[intended == "b"]["id"],
        record["prompt"]["id"],
        record["prompt"]["group_key"],
        candidates[0]["key"],
        candidates[1]["key"],
        line,
    )


@contextmanager
def _beating(version_id: int, token: uuid.UUID) -> Iterator[None]:
    """Beat from a thread while the freeze runs. A label model collects every vote and fits in
    one library call before the first batch is written (minutes on millions of votes); without
    a beat the recovery sweep would take such a freeze over, again and again."""
    stop = threading.Event()
    every = min(60.0, max(settings.RECOVERY_STALE_SECONDS / 4, 0.5))

    def beat() -> None:
        try:
            while not stop.wait(every):
                DatasetVersion.objects.filter(
                    pk=version_id, status=DatasetVersion.Status.FREEZING, freeze_token=token
                ).update(freeze_heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"freeze-beat-{version_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def dataset_version_freeze(*, version_id: int) -> DatasetVersion:
    """Freeze a version in this process (the task and the command call this). Idempotent.

    Raises ValidationFailed (naming the key) when the selection is empty; the version is then
    marked failed with that message.
    """
    version, token = _claim(version_id)
    if token is None:
        return version
    try:
        return _freeze(version, token)
    except FreezeSuperseded:
        log.warning("dataset.freeze.superseded version=%s", version_id)
        return DatasetVersion.objects.get(pk=version_id)
    except Exception as exc:
        message = str(exc) if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        failed = DatasetVersion.objects.filter(
            pk=version_id, status=DatasetVersion.Status.FREEZING, freeze_token=token
        ).update(status=DatasetVersion.Status.FAILED, error=message[:4000], freeze_token=None)
        if failed:
            # Exports asked for while it was freezing will never start: say why.
            DatasetExport.objects.filter(
                version_id=version_id, status=DatasetExport.Status.QUEUED
            ).update(
                status=DatasetExport.Status.FAILED,
                error=f"the version failed to freeze: {message}"[:4000],
                finished_at=timezone.now(),
            )
        log.warning("dataset.freeze.failed version=%s error=%s", version_id, message[:200])
        raise


def _freeze(version: DatasetVersion, token: uuid.UUID) -> DatasetVersion:
    started = timezone.now()
    specs = dataset_specs_resolve(filter_spec=version.filter_spec, split_spec=version.split_spec)
    stats = SelectionStats()
    hasher = ContentHasher()
    composition = Composition()
    batch: list[tuple] = []
    with export_workdir() as workdir:
        votes_path = workdir / "votes.parquet"
        votes = StoredWriter(votes_path)
        chunk = VoteColumns()
        with _beating(version.pk, token):
            for position, (record, counted) in enumerate(
                selection_records_voted(spec=specs.filter, split=specs.split, stats=stats)
            ):
                line = canonical_line(record)
                hasher.add(line)
                composition.add(record)
                batch.append(_record_row(version.pk, position, record, line))
                record_votes_add(chunk, record, counted)
                if len(batch) >= BATCH_RECORDS:
                    _write(version.pk, token, batch)
                if len(chunk) >= VOTE_CHUNK_ROWS:
                    votes.write(chunk)
                    chunk = VoteColumns()
            if batch:
                _write(version.pk, token, batch)
            votes.write(chunk)
            votes.close()
        if hasher.count == 0:
            raise stats.empty_error(specs.filter)
        return _finalise(version, token, specs, stats, hasher, composition, votes_path, started)


def _finalise(
    version: DatasetVersion,
    token: uuid.UUID,
    specs: ResolvedSpecs,
    stats: SelectionStats,
    hasher: ContentHasher,
    composition: Composition,
    votes_path: Path,
    started: datetime,
) -> DatasetVersion:
    # A million fresh rows: let the planner see them before exports page through them.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {DatasetRecord._meta.db_table}")
    with transaction.atomic():
        _owned(version.pk, token)
        stored = DatasetRecord.objects.filter(version_id=version.pk).count()
        if stored != hasher.count:
            raise ValidationFailed(
                f"wrote {hasher.count} records but the version holds {stored}", field="version"
            )
        # Stored while this run owns the version (a run that took it over stores its own).
        artifact_put_file(key=version_votes_key(version=version), path=votes_path)
        version.refresh_from_db()
        version.status = DatasetVersion.Status.FROZEN
        version.content_hash = hasher.hexdigest()
        version.record_count = hasher.count
        version.frozen_at = timezone.now()
        version.freeze_token = None
        version.freeze_heartbeat_at = None
        version.manifest = manifest_build(
            version=version, specs=specs, composition=composition, stats=stats
        )
        version.save()
        queued = list(
            version.exports.filter(status=DatasetExport.Status.QUEUED).values_list("pk", flat=True)
        )
        # Published below: the export sweep counts its wait from now, not from the request.
        DatasetExport.objects.filter(pk__in=queued).update(heartbeat_at=timezone.now())
        transaction.on_commit(lambda: _after_freeze(version.pk, queued))
        _model_scores_record(version.pk, stats.fit)
    log.info(
        "dataset.freeze.done version=%s records=%s hash=%s seconds=%.1f",
        version.pk,
        hasher.count,
        version.content_hash[:12],
        (timezone.now() - started).total_seconds(),
    )
    return version


def _model_scores_record(version_id: int, fit: dict | None) -> None:
    """A Dawid-Skene fit's accuracy per annotator becomes their model trust (quality control's
    second source of trust, after gold answers)."""
    accuracy = (fit or {}).get("annotator_accuracy")
    if accuracy:
        annotators_model_scores_record(
            scores={int(annotator): value for annotator, value in accuracy.items()},
            version_id=version_id,
        )


def _after_freeze(version_id: int, queued_exports: list[int]) -> None:
    manifest_write(version_id=version_id)
    for export_id in queued_exports:
        # A broker that cannot be reached leaves the export queued for the sweep.
        task_send(DATASET_EXPORT_RUN, kwargs={"export_id": export_id})
