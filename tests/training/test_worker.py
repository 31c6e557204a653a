"""Training runs through the real launcher: a Celery worker process on the `training` queue,
the test database, the broker and moto's S3; the trainer or a launcher definition's command as
its child process."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import storages

from tests.training.conftest import queue_purge, wait_for
from tests.training.worlds import procedural_version
from training_bridge.models import DatasetExport, RewardModel, TrainingMetric, TrainingRun
from training_bridge.training.services.launcher_definitions import (
    training_launcher_clean,
    training_launcher_save,
)
from training_bridge.training.services.training import training_run_cancel, training_run_start
from training_bridge.training.trainer.checkpoint import reward_model_load

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
FINISHED = ("succeeded", "failed", "cancelled")


def _finished(run_id: int):
    return lambda: TrainingRun.objects.get(pk=run_id).status in FINISHED


def _download(prefix: str, names: list[str], folder: Path) -> None:
    storage = storages["default"]
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(f"{prefix}/{name}", "rb") as source:
            target.write_bytes(source.read())


def _trainer_processes(run_id: int) -> list[int]:
    """Processes whose command line names the run's work folder (the trainer, a command)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"spatialprefs-run-{run_id}-".encode() in cmdline:
            found.append(int(proc.name))
    return found


def test_a_tiny_clip_model_trains_two_epochs_on_the_training_worker(
    training_worker, on_s3, tiny_clip_folder, tmp_path
):
    version = procedural_version(groups=6, seeds=2, size=32, annotators=2)
    config = {"backbone": "clip", "model_path": str(tiny_clip_folder), "head": "gaussian",
              "epochs": 2, "batch_size": 4, "lr": 1e-4, "seed": 3, "num_threads": 1}  # fmt: skip

    run = training_run_start(version_id=version.pk, config=config).run
    wait_for(_finished(run.pk), training_worker, 300)

    run.refresh_from_db()
    assert run.status == "succeeded", f"{run.error}\n{run.log_tail}"
    records = version.records.values_list("split", flat=True)
    train_pairs = sum(1 for split in records if split == "train")
    steps = 2 * math.ceil(train_pairs / 4)
    losses = TrainingMetric.objects.filter(run=run, name="train/loss").order_by("step")
    assert list(losses.values_list("step", flat=True)) == list(range(1, steps + 1))
    assert list(
        TrainingMetric.objects.filter(run=run, name="val/accuracy").values_list("epoch", flat=True)
    ) == [1, 2]  # fmt: skip
    names = set(TrainingMetric.objects.filter(run=run).values_list("name", flat=True))
    assert {"val/loss", "val/mean_std", "test/accuracy", "val/accuracy/num_perturbations/1",
            "val/accuracy/config/procedural-32"} <= names  # fmt: skip
    assert any(name.startswith("val/accuracy/relation/") for name in names)
    assert (run.step, run.total_steps, run.epoch) == (steps, steps, 2)
    assert run.summary["steps"] == steps and run.summary["train_pairs"] == train_pairs

    artifacts = {a["name"]: a for a in run.artifacts}
    assert {"config.json", "evaluation.json", "metrics.jsonl", "summary.json", "train.log",
            "checkpoint/reward_model.json", "checkpoint/head.safetensors",
            "checkpoint/clip/config.json", "checkpoint/clip/model.safetensors",
            "checkpoint/clip/tokenizer.json"} <= set(artifacts)  # fmt: skip
    storage = storages["default"]
    for name, artifact in artifacts.items():
        assert artifact["key"] == f"training/runs/{run.pk}/{name}"
        assert storage.size(artifact["key"]) == artifact["size"]

    model = RewardModel.objects.get(run=run)
    assert (model.status, model.version, model.dataset_version_id) == ("candidate", 1, version.pk)
    assert model.artifact_key == f"training/runs/{run.pk}/checkpoint"
    assert model.metrics == run.summary

    # The stored checkpoint, loaded elsewhere, scores the test split as training ended.
    checkpoint = [n.removeprefix("checkpoint/") for n in artifacts if n.startswith("checkpoint/")]
    _download(model.artifact_key, checkpoint, tmp_path / "checkpoint")
    _download(f"training/runs/{run.pk}", ["evaluation.json"], tmp_path)
    report = json.loads((tmp_path / "evaluation.json").read_text())
    export = DatasetExport.objects.get(version=version, format="parquet", include_images=True)
    (test_shard,) = [a for a in export.artifacts if a["name"].startswith("test-")]
    with storage.open(test_shard["key"], "rb") as source:
        (tmp_path / "test.parquet").write_bytes(source.read())
    table = pq.read_table(tmp_path / "test.parquet").to_pydict()
    scores = reward_model_load(tmp_path / "checkpoint").score_pairs(
        table["caption"], table["jpg_0"], table["jpg_1"]
    )
    assert len(report["scores"]) == len(scores) > 0
    for expected, (score_0, score_1) in zip(report["scores"], scores, strict=True):
        assert score_0.mean == pytest.approx(expected["score_0"], abs=1e-5)
        assert score_1.mean == pytest.approx(expected["score_1"], abs=1e-5)
        assert score_1.std == pytest.approx(expected["std_1"], rel=1e-4)


EXTERNAL = textwrap.dedent(
    """
    import json, os, pathlib, sys
    data, out, run_id = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    with (out / "metrics.jsonl").open("a") as metrics:
        for step in (1, 2, 3):
            metrics.write(json.dumps({"name": "train/loss", "step": step, "value": 1 / step}))
            metrics.write("\\n")
        metrics.write(json.dumps({"name": "val/accuracy", "step": 3, "epoch": 1, "value": 0.75}))
        metrics.write("\\nnot json\\n")
    (out / "adapter.bin").write_bytes(b"lora weights")
    config = json.loads(pathlib.Path(sys.argv[4]).read_text())
    seen = {"run": run_id, "shards": sorted(p.name for p in (data / "parquet").iterdir()),
            "manifest": json.loads((data / "manifest.json").read_text())["record_count"],
            "options": config["options"], "environment": sorted(os.environ)}
    (out / "seen.json").write_text(json.dumps(seen))
    print("external trainer done with", os.environ["TEAM_TOKEN"])
    """
)


def _launcher(name: str, argv: list[str], **fields) -> None:
    definition = training_launcher_clean(name=name, argv=argv, **fields)
    training_launcher_save(definition=definition)


def test_a_launcher_definition_runs_on_the_worker_without_its_secrets_and_its_metrics_count(
    training_worker, on_s3, tmp_path
):
    script = tmp_path / "my_trainer.py"
    script.write_text(EXTERNAL)
    _launcher(
        "team-vlm",
        [sys.executable, str(script), "{dataset_dir}", "{output_dir}", "{run_id}",
         "{config_file}"],
        environment={"TEAM_TOKEN": "team-token-value-123456"},
    )  # fmt: skip
    version = procedural_version(groups=4, seeds=1, size=32)
    config = {"launcher": "team-vlm", "model_name": "team-vlm-rm", "options": {"rank": 16}}

    run = training_run_start(version_id=version.pk, config=config).run
    wait_for(_finished(run.pk), training_worker, 120)

    run.refresh_from_db()
    assert run.status == "succeeded", f"{run.error}\n{run.log_tail}"
    points = TrainingMetric.objects.filter(run=run).order_by("name", "step")
    assert [(p.name, p.step, p.epoch, p.value) for p in points] == [
        ("train/loss", 1, None, 1.0), ("train/loss", 2, None, 0.5),
        ("train/loss", 3, None, pytest.approx(1 / 3)), ("val/accuracy", 3, 1, 0.75),
    ]  # fmt: skip
    assert run.summary == {"train/loss": pytest.approx(1 / 3), "val/accuracy": 0.75}
    assert {a["name"] for a in run.artifacts} == {
        "adapter.bin", "metrics.jsonl", "seen.json", "train.log",
    }  # fmt: skip
    with storages["default"].open(f"training/runs/{run.pk}/seen.json") as handle:
        seen = json.loads(handle.read())
    export = DatasetExport.objects.get(version=version, format="parquet", include_images=True)
    environment = seen.pop("environment")
    assert seen == {
        "run": str(run.pk),
        "shards": sorted(a["name"] for a in export.artifacts),
        "manifest": version.record_count,
        "options": {"rank": 16},
    }
    # the worker holds the database, broker and storage secrets; its child none of them
    assert "TEAM_TOKEN" in environment
    worker_only = {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "AWS_ACCESS_KEY_ID",
                   "AWS_SECRET_ACCESS_KEY", "S3_BUCKET", "DJANGO_SETTINGS_MODULE"}  # fmt: skip
    assert worker_only & set(environment) == set()
    assert "external trainer done with [REDACTED]" in run.log_tail
    assert "team-token-value-123456" not in run.log_tail
    model = RewardModel.objects.get(run=run)
    assert (model.name, model.artifact_key) == ("team-vlm-rm", f"training/runs/{run.pk}")


def test_a_failing_command_fails_the_run_with_its_error_and_log_tail(training_worker, on_s3):
    version = procedural_version(groups=4, seeds=1, size=32)
    program = (
        "import sys; print('loading {run_id}'); "
        "sys.stderr.write('RuntimeError: CUDA out of memory\\n'); sys.exit(7)"
    )
    _launcher("oom", [sys.executable, "-c", program])

    run = training_run_start(version_id=version.pk, config={"launcher": "oom"}).run
    wait_for(_finished(run.pk), training_worker, 120)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == "the trainer exited with status 7: RuntimeError: CUDA out of memory"
    assert f"loading {run.pk}" in run.log_tail
    assert run.artifacts == [] and not RewardModel.objects.filter(run=run).exists()


def test_cancelling_a_running_builtin_run_stops_the_trainer(training_worker, on_s3):
    version = procedural_version(groups=4, seeds=2, size=32)
    config = {"epochs": 500, "batch_size": 2, "image_size": 32, "num_threads": 1}
    run = training_run_start(version_id=version.pk, config=config).run
    wait_for(
        lambda: TrainingMetric.objects.filter(run=run, name="train/loss").count() >= 3,
        training_worker,
        120,
    )

    asked = training_run_cancel(run_id=run.pk)
    wait_for(_finished(run.pk), training_worker, 60)

    run.refresh_from_db()
    assert (asked.status, run.status, run.error) == ("running", "cancelled", "")
    assert "cancel requested: stopping the trainer" in run.log_tail
    assert "trainer.stopped reason=" in run.log_tail
    assert run.step < run.total_steps
    assert _trainer_processes(run.pk) == []
    assert not RewardModel.objects.filter(run=run).exists()
    points = TrainingMetric.objects.filter(run=run).count()
    wait_for(lambda: True, None, 1)
    assert TrainingMetric.objects.filter(run=run).count() == points


def test_a_version_whose_export_failed_fails_the_run_with_the_reason(training_worker, on_s3):
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(version_id=version.pk, config={"dataset_format": "webdataset"}).run
    DatasetExport.objects.filter(version=version, format="webdataset").update(
        status="failed", error="disk full"
    )

    wait_for(_finished(run.pk), training_worker, 60)
    queue_purge("cpu")  # the export task the start queued: no cpu worker runs here

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == (
        "dataset_version: the webdataset export of the dataset version is not available: disk full"
    )
