"""Scoring jobs: a large batch handed over now and its answer fetched later, so an RL trainer
uploads a whole GRPO group and generates the next one meanwhile.

A job runs in the serving process that received it (a thread of its own, at most
REWARD_SCORE_JOBS_THREADS [2] per process, each handing its images to the same batching engine
as the synchronous requests), and its state lives in Redis (REWARD_SCORE_JOBS_REDIS_URL,
default the Celery broker's), so any serving process answers the poll. The record is
`{"owner", "status": queued | running | done, "code", "body"}`: `code` and `body` are what the
synchronous request would have answered (200 and the scores, or the error), so a job is the
synchronous call, later.

Who: the account that posted a job is the only one that reads it (another gets the same 404 as
for an unknown id). Expiry: a record is kept REWARD_SCORE_JOB_TTL_SECONDS [3600] after its last
change (handed over, started, finished); then it is gone (404). A serving process that stops
loses the jobs it had not finished: their records stay "queued" or "running" until they expire,
and the trainer posts them again. At most REWARD_SCORE_JOBS_MAX_QUEUED [16] jobs wait per
process; past that a post is a 503 with Retry-After (`EngineBusy`), as is any call while Redis
does not answer (`JobsUnavailable`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from config.errors import Conflict, DomainError
from training_bridge.reward_models.scoring.engine import EngineBusy

log = logging.getLogger(__name__)

KEY_PREFIX = "reward:score-job:"
JobRun = Callable[[], tuple[int, dict[str, Any]]]  # -> (HTTP status, body)

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_waiting = 0
_clients: dict[str, Any] = {}  # Redis URL -> client


class JobsUnavailable(DomainError):
    """Redis, where jobs keep their state, did not answer: retry shortly."""

    status_code = 503
    code = "jobs_unavailable"
    retry_after_seconds = 5


def _reset() -> None:  # a forked child starts with no threads and its own connections
    global _lock, _executor, _waiting
    _lock = threading.Lock()
    _executor, _waiting = None, 0
    _clients.clear()


os.register_at_fork(after_in_child=_reset)


def job_ttl_seconds() -> int:
    return max(1, int(getattr(settings, "REWARD_SCORE_JOB_TTL_SECONDS", 3600)))


def _redis():
    import redis

    url = getattr(settings, "REWARD_SCORE_JOBS_REDIS_URL", None) or settings.CELERY_BROKER_URL
    if url not in _clients:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise Conflict(
                "scoring jobs keep their state in Redis; set REWARD_SCORE_JOBS_REDIS_URL "
                f"(the broker here is {url.split(':', 1)[0]}://)",
                field="jobs",
            )
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    return _clients[url]


def _store(call: Callable[[Any], Any]) -> Any:
    """`call(redis client)`; Redis not answering is `JobsUnavailable` (a 503)."""
    import redis

    try:
        return call(_redis())
    except redis.RedisError as exc:
        raise JobsUnavailable(f"the job store did not answer: {exc}", field="jobs") from exc


def _save(job_id: str, record: dict[str, Any]) -> None:
    data = json.dumps(record)
    _store(lambda r: r.set(KEY_PREFIX + job_id, data, ex=job_ttl_seconds()))


@dataclass(frozen=True)
class ScoreJob:
    id: str
    status: str
    code: int | None = None
    body: dict[str, Any] | None = None


def score_job_submit(*, owner_id: int, run: JobRun) -> ScoreJob:
    """Hand `run` (the scoring of an already checked request) to this process's job threads."""
    global _executor, _waiting
    limit = int(getattr(settings, "REWARD_SCORE_JOBS_MAX_QUEUED", 16))
    job_id = uuid.uuid4().hex
    with _lock:
        if _waiting >= limit:
            raise EngineBusy(
                f"{_waiting} scoring jobs are waiting in this process (at most {limit}): "
                "retry shortly",
                field="jobs",
            )
        _save(job_id, {"owner": owner_id, "status": "queued"})
        if _executor is None:
            threads = int(getattr(settings, "REWARD_SCORE_JOBS_THREADS", 2))
            _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="score-job")
        _waiting += 1
        _executor.submit(_job_run, job_id, owner_id, run)
    log.info("reward.job.queued job=%s owner=%s", job_id, owner_id)
    return ScoreJob(id=job_id, status="queued")


def _job_run(job_id: str, owner_id: int, run: JobRun) -> None:
    global _waiting
    from django.db import connection

    with _lock:
        _waiting -= 1
    try:
        _save(job_id, {"owner": owner_id, "status": "running"})
        try:
            code, body = run()
        except DomainError as exc:
            code, body = exc.status_code, exc.as_dict()
        except Exception:  # noqa: BLE001 - any other error of the job's thread is stored as its
            # 500 answer: otherwise the poll would say "running" until the record expired
            log.exception("reward.job.failed job=%s", job_id)
            code, body = 500, {"error": "server_error", "detail": "the job failed; see the log"}
        _save(job_id, {"owner": owner_id, "status": "done", "code": code, "body": body})
        log.info("reward.job.done job=%s code=%s", job_id, code)
    except JobsUnavailable:  # Redis gone: the record expires and the trainer posts again
        log.exception("reward.job.unsaved job=%s", job_id)
    finally:
        connection.close()  # this thread's own database connection


def score_job_get(*, job_id: str, owner_id: int) -> ScoreJob | None:
    """The job if it exists, has not expired and belongs to `owner_id`; else None."""
    raw = _store(lambda r: r.get(KEY_PREFIX + job_id))
    if raw is None:
        return None
    record = json.loads(raw)
    if record.get("owner") != owner_id:
        return None
    return ScoreJob(id=job_id, status=record["status"], code=record.get("code"),
                    body=record.get("body"))  # fmt: skip
