"""The one Celery app and its queues.

Queues are declared once here (`Queue`). Each task names its queue beside its code,
`@app.task(name=..., route_queue=Queue.GPU)`, and `route_by_task` routes on that attribute.
(Celery 5.5+ deprecates the task attribute `queue` in favour of `task_routes`; a router that
reads our own attribute keeps the queue next to the task without a central table.) An explicit
`apply_async(queue=...)` still wins, which is how a config's own queue is reached. A worker
started with `-Q gpu` only ever sees generation batches. Other options live in settings.
"""

import os
from enum import StrEnum
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class Queue(StrEnum):
    GPU = "gpu"  # generation batches: one worker process per GPU, prefetch 1
    CPU = "cpu"  # pairs, aggregation, dataset freezing and exports
    TRAINING = "training"  # reward-model training runs, one per worker


def route_by_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **extra: Any
) -> dict[str, str] | None:
    queue = getattr(task, "route_queue", None)
    return {"queue": str(queue)} if queue else None


app = Celery("spatialprefs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = (route_by_task,)
app.autodiscover_tasks()
