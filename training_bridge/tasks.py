"""The app's Celery tasks. Celery autodiscovers this module: it imports each sub-package's
tasks and defines the two that cross the sub-packages. Every task's name is a constant of
training_bridge/publishing.py, through which the services publish them by name.

- datasets/tasks.py: `training_bridge.dataset_version.freeze`, `training_bridge.dataset_export.run`
- reward_models/tasks.py: `training_bridge.reward_model.evaluate`,
  `training_bridge.active_learning.run`
- training/tasks.py: the stale-heartbeat sweeper every worker runs (no message)
- here: `training_bridge.training_run.execute` (a run, then its model registered) and
  `training_bridge.recover` (Celery beat: the lost messages of all three published again)
"""

import logging

from celery import shared_task

from training_bridge.datasets import tasks as datasets_tasks
from training_bridge.datasets.services.recovery import (
    dataset_exports_recover,
    dataset_versions_recover,
)
from training_bridge.orchestration import training_run_execute_and_register
from training_bridge.publishing import RECOVER, TRAINING_RUN_EXECUTE
from training_bridge.reward_models import tasks as reward_models_tasks
from training_bridge.training import tasks as training_tasks
from training_bridge.training.services.recovery import training_runs_recover

__all__ = ["datasets_tasks", "recover_task", "reward_models_tasks", "training_run_execute_task",
           "training_tasks"]  # fmt: skip

log = logging.getLogger(__name__)

# -- training runs (queue `training`) ----------------------------------------------------------
# Not acknowledged late: see training/tasks.py (the stale-heartbeat sweep ends a crashed run).
TRAINING_SOFT_LIMIT = 12 * 3600 - 300
TRAINING_HARD_LIMIT = 12 * 3600


@shared_task(
    name=TRAINING_RUN_EXECUTE.name,
    route_queue=TRAINING_RUN_EXECUTE.queue,
    ignore_result=True,
    soft_time_limit=TRAINING_SOFT_LIMIT,
    time_limit=TRAINING_HARD_LIMIT,
)
def training_run_execute_task(*, run_id: int) -> None:
    """Run a queued training run (built-in trainer or a launcher definition) on this worker;
    a run that succeeds registers its reward model (orchestration.py)."""
    run = training_run_execute_and_register(run_id=run_id)
    log.info("training.run.task_done run=%s status=%s", run_id, run.status if run else None)


# -- recovery of lost broker messages (Celery beat, queue `cpu`) -------------------------------
RECOVER_SOFT_LIMIT = 120


@shared_task(
    name=RECOVER.name,
    route_queue=RECOVER.queue,
    ignore_result=True,
    soft_time_limit=RECOVER_SOFT_LIMIT,
    time_limit=RECOVER_SOFT_LIMIT + 30,
)
def recover_task() -> None:
    """Publish again the freezes, exports and queued training runs whose messages were lost
    (datasets/services/recovery.py, training/services/recovery.py); beat sends it every
    RECOVERY_SWEEP_SECONDS (config/celery.py)."""
    dataset_versions_recover()
    dataset_exports_recover()
    training_runs_recover()
