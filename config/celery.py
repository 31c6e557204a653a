"""The one Celery app and its queues.

Queues are declared once here (`Queue`); each task names its queue in its decorator
(`@app.task(name=..., queue=Queue.GPU)`), which is how Celery routes it, so a worker started
with `-Q gpu` only ever sees generation batches. The other options live in settings (CELERY_*).
"""

import os
from enum import StrEnum

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class Queue(StrEnum):
    GPU = "gpu"  # generation batches: one worker process per GPU, prefetch 1
    CPU = "cpu"  # pairs, aggregation, dataset freezing and exports
    TRAINING = "training"  # reward-model training runs, one per worker


app = Celery("spatialprefs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
