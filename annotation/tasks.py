"""Celery tasks of the labeling stage (queue `cpu`): they re-load rows by id and call services.

`annotation.recover` is Celery beat's sweep of this stage (pair builds, annotation/services/
pairs.py: `pair_builds_recover`)."""

import logging

from celery import shared_task
from django.db import OperationalError

from config.celery import Queue

log = logging.getLogger(__name__)


@shared_task(
    name="annotation.pairs.build",
    route_queue=Queue.CPU,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=3600,
    time_limit=3900,
    autoretry_for=(OperationalError,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def pair_build_task(*, pair_build_id: int) -> None:
    """Build the pairs a PairBuild row asks for (idempotent: pairs are stored once)."""
    from annotation.services.pairs import pair_build_run

    build = pair_build_run(pair_build_id=pair_build_id)
    log.info(
        "labeling.pairs.build_task_done build=%s status=%s created=%d",
        build.pk,
        build.status,
        build.pairs_created,
    )


@shared_task(
    name="annotation.thumbnails.ensure",
    route_queue=Queue.CPU,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=360,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
)
def thumbnails_task(*, candidate_ids: list[int]) -> None:
    """Make the WebP thumbnails of these candidates' images (idempotent)."""
    from annotation.services.images import thumbnails_ensure

    made = thumbnails_ensure(candidate_ids=candidate_ids)
    log.info("labeling.thumbnails.done n=%d of=%d", made, len(candidate_ids))


RECOVER_SOFT_LIMIT = 120


@shared_task(
    name="annotation.recover",
    route_queue=Queue.CPU,
    ignore_result=True,
    soft_time_limit=RECOVER_SOFT_LIMIT,
    time_limit=RECOVER_SOFT_LIMIT + 30,
)
def recover_task() -> None:
    """Publish again the pair builds whose messages were lost or whose worker died; Celery
    beat sends it every RECOVERY_SWEEP_SECONDS (config/celery.py)."""
    from annotation.services.pairs import pair_builds_recover

    pair_builds_recover()
