"""Recovery of freezes and exports after lost broker messages.

Freezes and exports keep their state in PostgreSQL and are started by a broker message. When
Redis loses its messages (a restart without persistence, an eviction, a failover) or a worker
dies mid-job, the row stays queued or running and nothing would ever start it again. The
`training_bridge.recover` beat task (training_bridge/tasks.py) calls these every
RECOVERY_SWEEP_SECONDS; each publishes again the work that shows no sign of life for
RECOVERY_STALE_SECONDS, and only once per period (the row's beat is moved to the publish
time with a compare-and-set, so two sweeps never both publish it). A duplicate message is
harmless: a run finds the row done, or owned by a live run, and does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.celery import stale_cutoff
from training_bridge.models import DatasetExport, DatasetVersion
from training_bridge.publishing import (
    DATASET_EXPORT_RUN,
    DATASET_VERSION_FREEZE,
    task_send_on_commit,
)

log = logging.getLogger(__name__)


def _cutoff(now: datetime | None, stale_after: float | None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return now, stale_cutoff(now=now, stale_after=stale_after)


def dataset_versions_recover(
    *, now: datetime | None = None, stale_after: float | None = None
) -> list[int]:
    """Publish again the freezes with no beat for `stale_after` seconds (default
    RECOVERY_STALE_SECONDS): requested but never started, or whose run stopped beating. The
    old owner is dropped, so the next run takes the version over. Returns their ids."""
    now, cutoff = _cutoff(now, stale_after)
    stale = (
        DatasetVersion.objects.filter(status=DatasetVersion.Status.FREEZING)
        .annotate(beat=Coalesce("freeze_heartbeat_at", "created_at"))
        .filter(beat__lt=cutoff)
        .values_list("pk", "freeze_heartbeat_at")
    )
    recovered = []
    for pk, beat in stale:
        with transaction.atomic():
            taken = DatasetVersion.objects.filter(
                pk=pk, status=DatasetVersion.Status.FREEZING, freeze_heartbeat_at=beat
            ).update(freeze_token=None, freeze_heartbeat_at=now)
            if taken:
                task_send_on_commit(DATASET_VERSION_FREEZE, kwargs={"version_id": pk})
                recovered.append(pk)
    if recovered:
        log.warning("dataset.freeze.recovered versions=%s", recovered)
    return recovered


def dataset_exports_recover(
    *, now: datetime | None = None, stale_after: float | None = None
) -> list[int]:
    """Publish again the exports of frozen versions with no beat for `stale_after` seconds
    (default RECOVERY_STALE_SECONDS): queued but never started, or running without progress.
    A stale one goes back to queued without its owner, so the next run takes it over and the
    old run, if it still lives, stops at its next progress report. Returns their ids."""
    now, cutoff = _cutoff(now, stale_after)
    stale = (
        DatasetExport.objects.filter(
            status__in=[DatasetExport.Status.QUEUED, DatasetExport.Status.RUNNING],
            version__status=DatasetVersion.Status.FROZEN,
        )
        .annotate(beat=Coalesce("heartbeat_at", "created_at"))
        .filter(beat__lt=cutoff)
        .values_list("pk", "status", "heartbeat_at")
    )
    recovered = []
    for pk, status, beat in stale:
        with transaction.atomic():
            taken = DatasetExport.objects.filter(pk=pk, status=status, heartbeat_at=beat).update(
                status=DatasetExport.Status.QUEUED, run_token=None, heartbeat_at=now
            )
            if taken:
                task_send_on_commit(DATASET_EXPORT_RUN, kwargs={"export_id": pk})
                recovered.append(pk)
    if recovered:
        log.warning("dataset.export.recovered exports=%s", recovered)
    return recovered
