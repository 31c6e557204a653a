"""Celery tasks of datasets (queue `cpu`): they re-load rows by id and call services.

Both are idempotent (a frozen version or a finished export is left as it is; a rerun
replaces a half-done one), hence late acks. Domain errors are terminal: the service has
already marked the row failed with the message, so the task only logs them. The services
publish them by name (training_bridge/publishing.py).
"""

import logging

from botocore.exceptions import ConnectionError as S3ConnectionError
from celery import shared_task
from django.db import OperationalError

from config.errors import DomainError
from training_bridge.datasets.services.exports import dataset_export_run
from training_bridge.datasets.services.freezing import dataset_version_freeze
from training_bridge.publishing import DATASET_EXPORT_RUN, DATASET_VERSION_FREEZE

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, S3ConnectionError)
# Freezing and exporting are idempotent cpu jobs that retry transient errors with backoff.
DATASET_JOB = {
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


@shared_task(
    name=DATASET_VERSION_FREEZE.name,
    route_queue=DATASET_VERSION_FREEZE.queue,
    soft_time_limit=4 * 3600,
    time_limit=4 * 3600 + 300,
    **DATASET_JOB,
)
def dataset_version_freeze_task(*, version_id: int) -> None:
    """Freeze a version (select, aggregate, split, snapshot, hash)."""
    try:
        version = dataset_version_freeze(version_id=version_id)
    except DomainError as exc:
        log.warning("dataset.freeze.task_failed version=%s error=%s", version_id, exc)
        return
    log.info("dataset.freeze.task_done version=%s status=%s", version.pk, version.status)


@shared_task(
    name=DATASET_EXPORT_RUN.name,
    route_queue=DATASET_EXPORT_RUN.queue,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
    **DATASET_JOB,
)
def dataset_export_task(*, export_id: int) -> None:
    """Write one export of a frozen version into the default storage."""
    try:
        export = dataset_export_run(export_id=export_id)
    except DomainError as exc:
        log.warning("dataset.export.task_failed export=%s error=%s", export_id, exc)
        return
    log.info("dataset.export.task_done export=%s status=%s", export.pk, export.status)
