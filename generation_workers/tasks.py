"""Celery tasks of the generation stage, on the `gpu` queue (or a config's own queue).

- `generation.render_batch(config_id, candidate_ids)`: one batch of one config's items.
  Idempotent (items are claimed under a lease and finished once), so it is acknowledged late
  and requeued if its worker is lost. Transient database/storage errors retry with exponential
  backoff, at most MAX_RETRIES times; then its unfinished items fail with the reason. With
  GENERATION_WRITE_BEHIND (the default) the batch's images are stored and recorded on a
  writer thread while the next batch renders (services/write_behind.py); a transient failure
  there queues the batch again with the same backoff and count.
- `generation.config_check(config_id)`: load a config's model once and record what happened.
  Not requeued when its worker dies: a model that kills the worker must not crash-loop it.

Every worker also runs `LeaseSweeper`, a timer that requeues the items of workers that died
(their leases ran out). torch is imported by the backends inside the pool process, never here.

- `generation.recover` (queue `cpu`, sent by Celery beat every RECOVERY_SWEEP_SECONDS): publish
  again the campaigns and prompt-set builds whose broker messages were lost
  (services/recovery.py).
"""

import logging
import random

from celery import bootsteps, signals
from django.conf import settings
from django.db import DatabaseError, connection

from config.celery import Queue, app
from generation_workers.services.batches import (
    TransientFailure,
    batch_render,
    candidates_fail_unfinished,
)
from generation_workers.services.configs import generator_config_check_run
from generation_workers.services.leases import candidate_leases_sweep
from generation_workers.services.write_behind import write_behind_flush

log = logging.getLogger(__name__)

RENDER_SOFT_LIMIT = 30 * 60  # seconds for one batch, pipeline load included
RENDER_HARD_LIMIT = RENDER_SOFT_LIMIT + 120
CHECK_SOFT_LIMIT = 15 * 60
MAX_RETRIES = 5
RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 300


def retry_countdown(retries: int) -> float:
    """Exponential backoff with jitter: ~5 s, 10 s, 20 s ... capped at 5 minutes."""
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**retries) * random.uniform(0.8, 1.2)


@app.task(
    name="generation.render_batch",
    route_queue=Queue.GPU,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=RENDER_SOFT_LIMIT,
    time_limit=RENDER_HARD_LIMIT,
    max_retries=MAX_RETRIES,
)
def render_batch(self, config_id: int, candidate_ids: list[int]) -> None:
    retries = self.request.retries
    queue = (self.request.delivery_info or {}).get("routing_key") or Queue.GPU

    def retry_later(reason: str) -> None:
        """From the write-behind thread, after this task returned: queue the batch again with
        the backoff and retry count a retry of this task would have had."""
        if retries >= MAX_RETRIES:
            _give_up(candidate_ids, reason)
            return
        render_batch.apply_async(
            args=[config_id, candidate_ids],
            queue=queue,
            countdown=retry_countdown(retries),
            retries=retries + 1,
        )

    try:
        batch_render(
            config_id=config_id,
            candidate_ids=candidate_ids,
            worker=self.request.hostname or "",
            # Eagerly (in the caller's process and transaction) it stores before returning.
            retry_later=retry_later
            if settings.GENERATION_WRITE_BEHIND and not self.request.is_eager
            else None,
        )
    except TransientFailure as exc:
        if retries >= MAX_RETRIES:
            _give_up(candidate_ids, str(exc))
            return
        log.warning("generation.batch.retry config=%s try=%d error=%s", config_id, retries + 1, exc)
        raise self.retry(exc=exc, countdown=retry_countdown(retries)) from exc


def _give_up(candidate_ids: list[int], reason: str) -> None:
    """After the last retry of a transient error: fail the items nobody holds, with it."""
    candidates_fail_unfinished(
        candidate_ids=candidate_ids,
        message=f"the database or storage failed {MAX_RETRIES + 1} times: {reason}",
    )


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def write_behind_finish(**kwargs) -> None:
    """A worker stopping (warm shutdown) records the batch still being written first."""
    write_behind_flush(timeout=RENDER_HARD_LIMIT)


@app.task(
    name="generation.config_check",
    route_queue=Queue.GPU,
    ignore_result=True,
    soft_time_limit=CHECK_SOFT_LIMIT,
    time_limit=CHECK_SOFT_LIMIT + 60,
)
def config_check(config_id: int) -> None:
    generator_config_check_run(config_id=config_id)


def leases_sweep_tick() -> None:
    """One sweep from the worker's main process; its connection is closed again so that no
    connection is inherited by pool processes forked later."""
    try:
        candidate_leases_sweep()
    except DatabaseError:
        log.warning("generation.leases.sweep_failed", exc_info=True)
    finally:
        connection.close()


class LeaseSweeper(bootsteps.StartStopStep):
    """Every worker sweeps expired leases every third of the lease length."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        interval = max(1.0, settings.GENERATION_LEASE_SECONDS / 3)
        self.tref = worker.timer.call_repeatedly(interval, leases_sweep_tick, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(LeaseSweeper)


PROMPT_BUILD_SOFT_LIMIT = 30 * 60


@app.task(
    name="generation.prompt_set_build",
    route_queue=Queue.CPU,
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


RECOVER_SOFT_LIMIT = 120


@app.task(
    name="generation.recover",
    route_queue=Queue.CPU,
    ignore_result=True,
    soft_time_limit=RECOVER_SOFT_LIMIT,
    time_limit=RECOVER_SOFT_LIMIT + 30,
)
def recover_task() -> None:
    """Publish again the campaigns and prompt-set builds whose messages were lost."""
    from generation_workers.services.recovery import campaigns_recover, prompt_sets_recover

    campaigns_recover()
    prompt_sets_recover()
