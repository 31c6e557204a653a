"""Celery tasks of the generation stage."""

import logging

from config.celery import Queue, app

log = logging.getLogger(__name__)

PROMPT_BUILD_SOFT_LIMIT = 30 * 60


@app.task(
    name="generation.prompt_set_build",
    queue=Queue.CPU,
    acks_late=True,  # idempotent: a set that is no longer 'building' is left alone
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=PROMPT_BUILD_SOFT_LIMIT,
    time_limit=PROMPT_BUILD_SOFT_LIMIT + 60,
)
def prompt_set_build_task(prompt_set_id: int) -> None:
    """Build a large prompt set from its stored spec (small ones are built in the request)."""
    from generation_workers.services.prompts import prompt_set_populate

    prompt_set = prompt_set_populate(prompt_set_id=prompt_set_id)
    log.info(
        "prompts.set.task_done set=%s status=%s prompts=%d",
        prompt_set.pk,
        prompt_set.status,
        prompt_set.prompt_count,
    )
