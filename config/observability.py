"""Observability at the framework level: readiness checks of the services every process needs.

Readiness (GET /api/health/, config/views.py) asks PostgreSQL itself (with the outage rules of
config/outage.py) and, through django-health-check's checks, Redis and the default storage.
Liveness (GET /api/health/live/) asks nothing.
"""

from __future__ import annotations

import asyncio
import datetime

from django.conf import settings
from health_check.checks import Storage
from health_check.contrib.redis import Redis

READINESS_TIMEOUT = datetime.timedelta(seconds=3)


def _redis_urls() -> dict[str, str]:
    """The Redis servers this installation uses, by URL (the broker; the scoring jobs' Redis
    when it is another). A filesystem broker (`make demo`) needs no Redis."""
    urls = [settings.CELERY_BROKER_URL, settings.REWARD_SCORE_JOBS_REDIS_URL]
    return {url: url for url in urls if url and url.startswith(("redis://", "rediss://"))}


def _redis_check(url: str) -> Redis:
    from redis.asyncio import Redis as RedisClient

    seconds = READINESS_TIMEOUT.total_seconds()
    check = Redis(
        client_factory=lambda: RedisClient.from_url(
            url, socket_connect_timeout=seconds, socket_timeout=seconds
        )
    )
    check.timeout = READINESS_TIMEOUT
    return check


async def readiness_failures() -> list[str]:
    """The dependencies besides PostgreSQL that do not answer: `redis`, `storage` (each once)."""
    checks = [("redis", _redis_check(url)) for url in _redis_urls()]
    storage = Storage()
    storage.timeout = READINESS_TIMEOUT
    checks.append(("storage", storage))
    results = await asyncio.gather(*(check.get_result() for _, check in checks))
    failing = []
    for (name, _), result in zip(checks, results, strict=True):
        if result.error is not None and name not in failing:
            failing.append(name)
    return failing
