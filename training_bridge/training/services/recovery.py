"""Recovery of queued training runs after lost broker messages.

A run keeps its state in PostgreSQL and is started by a message on the `training` queue. The
`training_bridge.recover` beat task (training_bridge/tasks.py) calls `training_runs_recover`
every RECOVERY_SWEEP_SECONDS; the execute task it publishes registers a succeeded run's model,
as the first message would have. A duplicate message is harmless: the run is claimed once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from config.celery import BrokerUnreachable, queue_waiting, stale_cutoff
from training_bridge.models import TrainingRun
from training_bridge.publishing import TRAINING_RUN_EXECUTE, task_send

log = logging.getLogger(__name__)


def training_runs_recover(
    *, now: datetime | None = None, stale_after: float | None = None
) -> list[int]:
    """Publish again the runs still queued `stale_after` seconds (default
    RECOVERY_STALE_SECONDS) after they were made, when the `training` queue holds no
    message: their message was lost. While messages wait there the runs may be behind
    them (a run takes hours), so nothing is published. Returns their ids.

    A run that crashed while running is not started again: the stale-heartbeat sweep
    (training.training_runs_sweep) marks it failed, and a forced start makes a new attempt.
    """
    cutoff = stale_cutoff(now=now, stale_after=stale_after)
    stale = list(
        TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    if not stale:
        return []
    try:
        if queue_waiting(TRAINING_RUN_EXECUTE.queue):
            return []
    except BrokerUnreachable as exc:
        log.warning("training.run.recover_skipped error=%s", exc)
        return []
    recovered = [pk for pk in stale if task_send(TRAINING_RUN_EXECUTE, kwargs={"run_id": pk})]
    if recovered:
        log.warning("training.run.recovered runs=%s", recovered)
    return recovered
