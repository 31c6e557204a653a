"""A training worker that dies mid-run: its run is marked failed, never left running."""

from __future__ import annotations

import os
import signal

import pytest

from tests.training.conftest import wait_for, worker_launch
from tests.training.test_worker import _trainer_processes
from tests.training.worlds import procedural_version
from training_bridge.models import TrainingMetric, TrainingRun
from training_bridge.training.services.training import training_run_start

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def crashing_worker(s3_bucket, tmp_path):
    worker = worker_launch(
        tmp_path / "worker.log",
        {
            **s3_bucket,
            "TRAINING_HEARTBEAT_SECONDS": "0.5",
            "TRAINING_HEARTBEAT_STALE_SECONDS": "4",
        },  # fmt: skip
    )
    yield worker
    worker.stop()


def test_a_killed_worker_process_leaves_its_run_failed_and_no_orphan_trainer(
    crashing_worker, on_s3
):
    version = procedural_version(groups=4, seeds=2, size=32)
    config = {"epochs": 500, "batch_size": 2, "image_size": 32, "num_threads": 1}
    run = training_run_start(version_id=version.pk, config=config).run
    wait_for(
        lambda: TrainingMetric.objects.filter(run=run, name="train/loss").exists(),
        crashing_worker,
        120,
    )
    run.refresh_from_db()
    pool_pid = int(run.worker.rsplit(":", 1)[1])
    assert _trainer_processes(run.pk) != []

    os.kill(pool_pid, signal.SIGKILL)  # the process running the task dies (OOM, segfault...)
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status != "running", crashing_worker, 60)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith(f"the training worker {run.worker} stopped sending heartbeats")
    assert run.finished_at is not None
    wait_for(lambda: _trainer_processes(run.pk) == [], None, 10)
