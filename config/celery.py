"""The one Celery app and its queues.

Queues are declared once here (`Queue`). Each task names its queue in its decorator
(`@app.task(name=..., route_queue=Queue.GPU)`), and `route_by_task`, the app's router, sends
it there (Celery 5.5+ deprecates the `queue` task attribute for this). Senders that need
another queue (a config's own) pass `apply_async(queue=...)`, which always wins. A worker
started with `-Q gpu` only ever sees generation batches. Other options live in settings
(CELERY_*).
"""

import os
from enum import StrEnum
from typing import Any

from celery import Celery, signals

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


@signals.task_prerun.connect
@signals.task_postrun.connect
def connections_recycle(**kwargs: Any) -> None:
    """A task is a request for the database: drop a connection that is too old or broke, keep
    a good one (settings.CELERY_DB_REUSE_MAX stops Celery from closing it every time)."""
    if getattr(kwargs.get("task") and kwargs["task"].request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
