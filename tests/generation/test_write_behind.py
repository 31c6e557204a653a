"""Write-behind: the worker's task hands a rendered batch to the writer thread and returns; the
items stay leased until recorded, and a transient failure there queues the batch again.

The writer thread has its own database connection, so these tests commit (transaction=True).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from generation_workers.models import Candidate
from generation_workers.services.batches import batch_render
from generation_workers.services.write_behind import write_behind_flush
from tests.conftest import VENV_BIN
from tests.generation.test_batches import ids_of, procedural, running, storage_unreachable

pytestmark = pytest.mark.django_db(transaction=True)


class MotoServer(NamedTuple):
    pid: int
    endpoint: str


@pytest.fixture(scope="module")
def moto_process() -> Iterator[MotoServer]:
    """This module's own S3 server (moto), which a test may pause like a storage that hangs."""
    binary = shutil.which("moto_server", path=str(VENV_BIN)) or shutil.which("moto_server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    yield MotoServer(pid=proc.pid, endpoint=f"http://127.0.0.1:{port}")
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto_endpoint(moto_process) -> str:
    return moto_process.endpoint


def test_the_batch_is_recorded_by_the_writer_and_held_until_then(s3_settings, moto_process):
    config = procedural()
    campaign = running([config])
    retried: list[str] = []
    # given a storage that stops answering (the S3 server paused) while the batch is rendered
    os.kill(moto_process.pid, signal.SIGSTOP)
    try:
        # when the task's call renders the batch with write-behind
        report = batch_render(
            config_id=config.pk, candidate_ids=ids_of(campaign), retry_later=retried.append
        )

        # then it returned before anything was recorded, and the items are still held
        assert (report.claimed, report.done, report.failed) == (2, 0, 0)
        rows = Candidate.objects.filter(campaign=campaign).values_list("status", "lease_token")
        assert {status for status, _ in rows} == {"pending"}
        assert all(token for _, token in rows)
    finally:
        os.kill(moto_process.pid, signal.SIGCONT)

    # and once the storage answers again, both are done, released, and the campaign completed
    write_behind_flush(timeout=30)
    assert set(
        Candidate.objects.filter(campaign=campaign).values_list("status", "lease_token")
    ) == {("done", "")}
    campaign.refresh_from_db()
    assert campaign.status == "completed"
    assert retried == []


def test_a_storage_failure_on_the_writer_releases_the_items_and_queues_the_batch_again(
    s3_settings, settings
):
    # given a storage that cannot be reached
    storage_unreachable(settings)
    config = procedural()
    campaign = running([config], perturbed=False)
    retried: list[str] = []

    # when the batch is rendered with write-behind and its write fails
    batch_render(config_id=config.pk, candidate_ids=ids_of(campaign), retry_later=retried.append)
    write_behind_flush(timeout=30)

    # then the retry was asked for with the reason, and the item is free for it
    assert len(retried) == 1 and retried[0].startswith("EndpointConnectionError: ")
    assert Candidate.objects.filter(campaign=campaign).values_list(
        "status", "lease_token", "leased_until", "attempts"
    ).get() == ("pending", "", None, 1)
