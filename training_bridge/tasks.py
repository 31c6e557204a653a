"""Celery tasks of the dataset stage (queue `cpu`): they re-load rows by id and call services.

Both are idempotent (a frozen version or a finished export is left as it is; a rerun
replaces a half-done one), hence late acks. Domain errors are terminal: the service has
already marked the row failed with the message, so the task only logs them.
"""

import logging

from botocore.exceptions import ConnectionError as S3ConnectionError
from celery import bootsteps, shared_task
from django.db import OperationalError

from config.celery import Queue, app
from config.errors import DomainError

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, S3ConnectionError)
# Freezing and exporting are idempotent cpu jobs that retry transient errors with backoff.
DATASET_JOB = {
    "route_queue": Queue.CPU,
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


@shared_task(
    name="training_bridge.dataset_version.freeze",
    soft_time_limit=4 * 3600,
    time_limit=4 * 3600 + 300,
    **DATASET_JOB,
)
def dataset_version_freeze_task(*, version_id: int) -> None:
    """Freeze a version (select, aggregate, split, snapshot, hash)."""
    from training_bridge.datasets.services.freezing import dataset_version_freeze

    try:
        version = dataset_version_freeze(version_id=version_id)
    except DomainError as exc:
        log.warning("dataset.freeze.task_failed version=%s error=%s", version_id, exc)
        return
    log.info("dataset.freeze.task_done version=%s status=%s", version.pk, version.status)


@shared_task(
    name="training_bridge.dataset_export.run",
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
    **DATASET_JOB,
)
def dataset_export_task(*, export_id: int) -> None:
    """Write one export of a frozen version into the default storage."""
    from training_bridge.datasets.services.exports import dataset_export_run

    try:
        export = dataset_export_run(export_id=export_id)
    except DomainError as exc:
        log.warning("dataset.export.task_failed export=%s error=%s", export_id, exc)
        return
    log.info("dataset.export.task_done export=%s status=%s", export.pk, export.status)


# -- recovery of lost broker messages (Celery beat, queue `cpu`) -------------------------------
RECOVER_SOFT_LIMIT = 120


@shared_task(
    name="training_bridge.recover",
    route_queue=Queue.CPU,
    ignore_result=True,
    soft_time_limit=RECOVER_SOFT_LIMIT,
    time_limit=RECOVER_SOFT_LIMIT + 30,
)
def recover_task() -> None:
    """Publish again the freezes, exports and queued training runs whose messages were lost
    (services/recovery.py); beat sends it every RECOVERY_SWEEP_SECONDS (config/celery.py)."""
    from training_bridge.datasets.services.recovery import (
        dataset_exports_recover,
        dataset_versions_recover,
        training_runs_recover,
    )

    dataset_versions_recover()
    dataset_exports_recover()
    training_runs_recover()


# -- training runs (queue `training`) ----------------------------------------------------------
# A run is NOT acknowledged late: a crashed worker must not start the same (hours-long) run
# again behind the user's back. Its run is marked failed by the stale-heartbeat sweep that every
# worker runs (TrainingSweeper below); starting it again with force makes a new attempt.

TRAINING_SOFT_LIMIT = 12 * 3600 - 300
TRAINING_HARD_LIMIT = 12 * 3600


@shared_task(
    name="training_bridge.training_run.execute",
    route_queue=Queue.TRAINING,
    ignore_result=True,
    soft_time_limit=TRAINING_SOFT_LIMIT,
    time_limit=TRAINING_HARD_LIMIT,
)
def training_run_execute_task(*, run_id: int) -> None:
    """Run a queued training run (built-in trainer or external command) on this worker."""
    from training_bridge.training.services.launchers import training_run_execute

    run = training_run_execute(run_id=run_id)
    log.info("training.run.task_done run=%s status=%s", run_id, run.status if run else None)


def training_sweep_tick() -> None:
    """One stale-heartbeat sweep from a worker's main process (its connection closed again, so
    that no pool process forked later inherits it)."""
    from django.db import DatabaseError, connection

    from training_bridge.training.services.training import training_runs_sweep

    try:
        training_runs_sweep()
    except DatabaseError:
        log.warning("training.sweep.failed", exc_info=True)
    finally:
        connection.close()


class TrainingSweeper(bootsteps.StartStopStep):
    """Every worker marks failed the running runs whose heartbeat went stale (a third of the
    stale limit apart), so a crashed training worker never leaves a run 'running'."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        from training_bridge.training.services.training import stale_seconds

        interval = max(1.0, stale_seconds() / 3)
        self.tref = worker.timer.call_repeatedly(interval, training_sweep_tick, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(TrainingSweeper)


# -- reward models in use (queue `cpu`) --------------------------------------------------------
# Both are idempotent: an evaluation is stored again over itself; active learning picks the
# same pairs for the same request and a pair is stored once per queue. Hence late acks.


@shared_task(
    name="training_bridge.reward_model.evaluate",
    route_queue=Queue.CPU,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 300,
    autoretry_for=TRANSIENT,
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def reward_model_evaluate_task(*, model_id: int, version_id: int, refresh: bool = False) -> None:
    """A reward model's accuracy on a frozen version's test split, stored on the model."""
    from training_bridge.reward_models.services.registry import reward_model_evaluate

    try:
        evaluation = reward_model_evaluate(
            model_id=model_id, version_id=version_id, refresh=refresh
        )
    except DomainError as exc:
        log.warning("reward.evaluate.task_failed model=%s error=%s", model_id, exc)
        return
    log.info("reward.evaluate.task_done model=%s accuracy=%s", model_id, evaluation["accuracy"])


@shared_task(
    name="training_bridge.active_learning.run",
    route_queue=Queue.CPU,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 300,
    autoretry_for=TRANSIENT,
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def active_learning_task(
    *,
    campaign_id: int,
    model_id: int,
    queue_id: int,
    pairs: int,
    kinds: list[str],
    priority: int = 0,
    exclude_queued: bool = True,
) -> None:
    """Queue the pairs of a campaign the reward model is least sure of."""
    from training_bridge.reward_models.services.active_learning import active_learning_queue

    try:
        result = active_learning_queue(
            campaign_id=campaign_id, model_id=model_id, queue_id=queue_id, pairs=pairs,
            kinds=kinds, priority=priority, exclude_queued=exclude_queued,
        )  # fmt: skip
    except DomainError as exc:
        log.warning("reward.active_learning.task_failed queue=%s error=%s", queue_id, exc)
        return
    log.info("reward.active_learning.task_done queue=%s queued=%d", queue_id, result.pairs_queued)
