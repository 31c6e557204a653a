"""The app's Celery tasks as names and queues, and their publishing by name.

The tasks modules import the services (a task re-loads its row and calls one); a service that
queues work therefore never imports a tasks module back. It names the task here and publishes
it by name through the Celery app (`send_task`), after its transaction commits. Each task's
`name=` and queue in the tasks modules are these constants, so a name lives in one place.

A broker that cannot be reached is logged (`celery.publish.failed`) and never raises into the
request or task that committed: its row stays queued and the recovery sweep publishes it later.
With CELERY_TASK_ALWAYS_EAGER (bench/loop) the task runs in this process, as `apply_async`
would run it: `send_task` alone ignores that setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from config.celery import BrokerUnreachable, Queue, app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskRoute:
    name: str
    queue: Queue


# datasets (training_bridge/datasets/tasks.py)
DATASET_VERSION_FREEZE = TaskRoute("training_bridge.dataset_version.freeze", Queue.CPU)
DATASET_EXPORT_RUN = TaskRoute("training_bridge.dataset_export.run", Queue.CPU)
# training runs (training_bridge/tasks.py: executing one registers its model)
TRAINING_RUN_EXECUTE = TaskRoute("training_bridge.training_run.execute", Queue.TRAINING)
# reward models in use (training_bridge/reward_models/tasks.py)
REWARD_MODEL_EVALUATE = TaskRoute("training_bridge.reward_model.evaluate", Queue.CPU)
ACTIVE_LEARNING_RUN = TaskRoute("training_bridge.active_learning.run", Queue.CPU)
# the recovery sweep, sent by Celery beat (training_bridge/tasks.py)
RECOVER = TaskRoute("training_bridge.recover", Queue.CPU)


def task_send(route: TaskRoute, *, kwargs: dict[str, Any]) -> bool:
    """Publish now; False (logged) when the broker cannot be reached."""
    try:
        if app.conf.task_always_eager:
            app.tasks[route.name].apply(kwargs=kwargs)
        else:
            app.send_task(route.name, kwargs=kwargs, queue=str(route.queue))
    except BrokerUnreachable as exc:
        log.warning("celery.publish.failed task=%s error=%s", route.name, exc)
        return False
    return True


def task_send_on_commit(route: TaskRoute, *, kwargs: dict[str, Any]) -> None:
    """Publish once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task_send(route, kwargs=kwargs))
