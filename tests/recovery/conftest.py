"""Fixtures of the recovery tests: real workers and a queue of the test's own (generation's)."""

from collections.abc import Iterator

import pytest

from config.celery import Queue
from tests.generation.conftest import (  # noqa: F401
    own_queue,
    queue_purge,
    queue_taken,
    worker_start,
)


def messages(queue: str) -> list[tuple[str, list, dict]]:
    """The tasks waiting in a queue (name, args, kwargs), taken off the queue."""
    return [(headers["task"], payload[0], payload[1]) for headers, payload in queue_taken(queue)]


@pytest.fixture
def broker_emptied() -> Iterator[None]:
    """The broker's own queues of this Redis db start (and end) empty: no message of an
    earlier test is taken for one the code under test published."""
    for queue in Queue:
        queue_purge(queue)
    yield
    for queue in Queue:
        queue_purge(queue)
