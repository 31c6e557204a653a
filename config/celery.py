"""The one Celery app and its queues.

Queues are declared once here (`Queue`). Each task names its queue in its decorator
(`@app.task(name=..., route_queue=Queue.GPU)`), and `route_by_task`, the app's router, sends
it there (Celery 5.5+ deprecates the `queue` task attribute for this). Senders that need
another queue (a config's own) pass `apply_async(queue=...)`, which always wins. A worker
started with `-Q gpu` only ever sees generation batches. Other options live in settings
(CELERY_*).

Publishing never fails a request or a task whose row is already saved: `Task.delay_on_commit`
and `task_publish` log a broker that cannot be reached (`celery.publish.failed`) instead of
raising, and the recovery sweeps that Celery beat runs every RECOVERY_SWEEP_SECONDS
(`beat_schedule` below; one task per app, on the `cpu` queue) publish again whatever is still
queued or running without a sign of life after RECOVERY_STALE_SECONDS: work whose state lives
in PostgreSQL survives lost broker messages (a Redis restart without persistence, an eviction,
a failover) with no manual step.
"""

import logging
import os
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from celery import Celery, signals
from celery.contrib.django.task import DjangoTask
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerUnreachable

from config.logs import (
    task_log_context_enter,
    task_log_context_leave,
    task_request_id_attach,
    worker_logs_configure,
)
from config.metrics import worker_metrics_serve

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

log = logging.getLogger(__name__)


class Queue(StrEnum):
    GPU = "gpu"  # generation batches: one worker process per GPU, prefetch 1
    CPU = "cpu"  # pairs, aggregation, dataset freezing and exports
    TRAINING = "training"  # reward-model training runs, one per worker


def route_by_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **extra: Any
) -> dict[str, str] | None:
    queue = getattr(task, "route_queue", None)
    return {"queue": str(queue)} if queue else None


def task_publish(task: Any, *, args: Any = None, kwargs: Any = None, **options: Any) -> bool:
    """Publish now; False (logged) when the broker cannot be reached. The caller's row stays
    queued and the recovery sweep publishes it again later."""
    try:
        task.apply_async(args=args, kwargs=kwargs, **options)
    except BrokerUnreachable as exc:
        log.warning("celery.publish.failed task=%s error=%s", task.name, exc)
        return False
    return True


class Task(DjangoTask):
    """The app's task class: publishing after a commit never raises into the request or task
    that committed (its row is saved; the sweep publishes it when the broker is back)."""

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        transaction.on_commit(lambda: task_publish(self, args=args, kwargs=kwargs))

    def apply_async_on_commit(self, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        transaction.on_commit(lambda: task_publish(self, args=args, kwargs=kwargs, **options))


def queue_waiting(name: str) -> int:
    """Messages waiting in a broker queue (not those a worker holds). Raises
    BrokerUnreachable when the broker does not answer within a few seconds."""
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        try:
            return conn.default_channel.queue_declare(queue=name, passive=True).message_count
        except ChannelError:
            return 0  # Redis drops an empty queue's key: nothing waits there


app = Celery("spatialprefs", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = (route_by_task,)
app.autodiscover_tasks()
# A worker started with CELERY_METRICS_PORT serves its processes' metrics (config/metrics.py).
signals.worker_init.connect(worker_metrics_serve, weak=False)
# Request ids across the broker, and the worker's and beat's log lines (config/logs.py).
signals.before_task_publish.connect(task_request_id_attach, weak=False)
signals.task_prerun.connect(task_log_context_enter, weak=False)
signals.task_postrun.connect(task_log_context_leave, weak=False)
signals.after_setup_logger.connect(worker_logs_configure, weak=False)
signals.after_setup_task_logger.connect(worker_logs_configure, weak=False)


# One sweep per app, each calling its app's `<thing>s_recover` services (see the docstring).
def stale_cutoff(*, now: datetime | None = None, stale_after: float | None = None) -> datetime:
    """A sign of life (beat, publish, progress) older than this is stale: its work is presumed
    lost and the sweeps publish it again, and a second delivery takes it over. `stale_after`
    defaults to RECOVERY_STALE_SECONDS; tests pass `now` instead of sleeping."""
    from django.conf import settings

    seconds = settings.RECOVERY_STALE_SECONDS if stale_after is None else stale_after
    return (now or timezone.now()) - timedelta(seconds=float(seconds))


RECOVERY_TASKS = ("generation.recover", "annotation.recover", "training_bridge.recover")


@app.on_after_configure.connect
def recovery_schedule(sender: Celery, **kwargs: Any) -> None:
    """Celery beat's schedule: the recovery sweeps, every RECOVERY_SWEEP_SECONDS. A tick not
    run within one interval (every worker busy or down) expires: the next one does its work."""
    from django.conf import settings

    every = float(settings.RECOVERY_SWEEP_SECONDS)
    sender.conf.beat_schedule = {
        name: {"task": name, "schedule": every, "options": {"expires": every}}
        for name in RECOVERY_TASKS
    }


@signals.task_prerun.connect
@signals.task_postrun.connect
def connections_recycle(**kwargs: Any) -> None:
    """A task is a request for the database: drop a connection that is too old or broke, keep
    a good one (settings.CELERY_DB_REUSE_MAX stops Celery from closing it every time)."""
    if getattr(kwargs.get("task") and kwargs["task"].request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
