"""Fixtures of the recovery tests: real workers and a queue of the test's own (generation's)."""

from collections.abc import Iterator

import pytest
from kombu import Connection

from config.celery import Queue, app
from tests.generation.conftest import own_queue, queue_purge, worker_start  # noqa: F401


def messages(queue: str) -> list[tuple[str, list, dict]]:
    """The tasks waiting in a queue (name, args, kwargs), taken off the queue."""
    found = []
    with Connection(app.conf.broker_url) as conn:
        simple = conn.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(timeout=0.2)
            except simple.Empty:
                break
            args, kwargs, _ = message.payload
            found.append((message.headers["task"], args, kwargs))
            message.ack()
        simple.close()
    return found


@pytest.fixture
def broker_emptied() -> Iterator[None]:
    """The broker's own queues of this Redis db start (and end) empty: no message of an
    earlier test is taken for one the code under test published."""
    for queue in Queue:
        queue_purge(queue)
    yield
    for queue in Queue:
        queue_purge(queue)
