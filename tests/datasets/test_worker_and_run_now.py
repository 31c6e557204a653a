"""The real paths around the services: a Celery worker on the `cpu` queue, and a snapshot frozen
and exported in the calling process (`run_now`, as `manage.py dataset` does)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from tests.conftest import VENV_BIN, database_url_of_test
from tests.datasets.factories import judge_bulk, world_build
from training_bridge.datasets.services.datasets import (
    dataset_create,
    dataset_version_create,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import dataset_export_request
from training_bridge.datasets.services.freezing import dataset_version_freeze
from training_bridge.datasets.services.snapshots import dataset_snapshot
from training_bridge.models import DatasetExport, DatasetVersion

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cpu_worker(transactional_db, settings, tmp_path):
    """A real Celery worker (solo pool) on the `cpu` queue, on this test's database and media."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "STORAGE_BACKEND": "local",
    }
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            "cpu",
            "--pool",
            "solo",
            "--hostname",
            f"datasets-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    yield log
    proc.terminate()
    proc.wait(timeout=30)


def _wait(condition, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out; worker log:\n{log.read_text()[-3000:]}")


@pytest.mark.worker
def test_a_cpu_worker_freezes_and_exports_a_version(cpu_worker):
    world = world_build(groups=2)
    judge_bulk(world, lambda pair: ["left", "left", "right"])

    version = dataset_snapshot(
        dataset_name="spatial", filter_spec={"queues": [world.queue.name]}, include_images=True
    )
    assert version.status == "freezing"

    def finished() -> bool:
        return DatasetExport.objects.filter(version=version, status="done").count() == 6

    _wait(finished, cpu_worker)
    version.refresh_from_db()
    assert (version.status, version.record_count) == ("frozen", 8)
    jsonl = DatasetExport.objects.get(version=version, format="jsonl")
    (records,) = [a for a in jsonl.artifacts if a["name"] == "records.jsonl"]
    assert records["sha256"] == version.content_hash
    manifest = json.loads(
        (Path(settings.MEDIA_ROOT) / "datasets/spatial/v1/manifest.json").read_text()
    )
    assert sorted(a["format"] for a in manifest["artifacts"]) == [
        "arena", "hps", "jsonl", "openrlhf", "parquet", "webdataset",
    ]  # fmt: skip
    again = dataset_snapshot(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})
    assert again.pk == version.pk
    assert DatasetVersion.objects.count() == 1


@pytest.mark.worker
def test_the_worker_marks_a_freeze_that_selects_nothing_failed_with_the_reason(cpu_worker):
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    dataset = dataset_create(name="spatial")
    version = dataset_version_create(
        dataset_id=dataset.pk, filter_spec={"queues": [world.queue.pk]}
    )
    # The judgments vanish between the request and the freeze: the worker finds nothing.
    version.filter_spec = {**version.filter_spec, "min_judgments": 2}
    version.save()
    with transaction.atomic():  # the task leaves on commit, after the export request
        dataset_version_freeze_request(version_id=version.pk)
        export = dataset_export_request(version_id=version.pk, format="jsonl")
    _wait(lambda: DatasetVersion.objects.get(pk=version.pk).status == "failed", cpu_worker)
    version.refresh_from_db()
    assert version.error.startswith("filter_spec.min_judgments: the selection is empty")
    assert version.records.count() == 0
    export.refresh_from_db()
    assert export.status == "failed"
    assert export.error.startswith("the version failed to freeze: filter_spec.min_judgments")


def test_a_snapshot_run_now_is_frozen_and_exported_before_it_returns(transactional_db):
    world = world_build(groups=3)
    judge_bulk(world, lambda pair: ["left", "right", "left"])
    spec = {"queues": [world.queue.name]}
    split = {"ratios": {"train": 1}}

    version = dataset_snapshot(
        dataset_name="demo", filter_spec=spec, split_spec=split, run_now=True
    )
    second = dataset_version_freeze(
        version_id=dataset_version_create(
            dataset_id=version.dataset_id, filter_spec=spec, split_spec=split
        ).pk
    )

    assert (version.status, version.record_count) == ("frozen", 12)
    assert second.content_hash == version.content_hash
    assert sorted((e.format, e.status, len(e.artifacts)) for e in version.exports.all()) == [
        # each with its dataset card and votes table
        ("arena", "done", 4),  # train.json, images-00000.tar
        ("hps", "done", 4),
        ("jsonl", "done", 3),
        ("openrlhf", "done", 4),
        ("parquet", "done", 3),
        ("webdataset", "done", 3),
    ]
    assert (Path(settings.MEDIA_ROOT) / "datasets/demo/v1/manifest.json").exists()
