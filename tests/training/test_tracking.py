"""Experiment tracking beside the run page's curves: the built-in trainer writes TensorBoard
event files that a run stores as artifacts (read back here with TensorBoard's own
EventAccumulator), and a tracker configured on the worker (MLflow, W&B) whose library is missing
stops the run at its start with a message that says what to do. Neither mlflow nor wandb is
installed here, so their own logging is not exercised by this suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.worlds import procedural_version
from training_bridge.models import TrainingMetric
from training_bridge.training.services.launchers import (
    launcher_child_environment,
    launcher_hidden_values,
    training_run_execute,
)
from training_bridge.training.services.training import training_run_start
from training_bridge.training.trainer.config import config_parse
from training_bridge.training.trainer.events import Events
from training_bridge.training.trainer.loop import train
from training_bridge.training.trainer.tracking import TENSORBOARD_DIR, mlflow_key, trackers_open

REPO = Path(__file__).resolve().parents[2]
SMALL = {"epochs": 2, "batch_size": 16, "image_size": 32, "seed": 7, "num_threads": 1}
MISSING = {
    "MLFLOW_TRACKING_URI": (
        "http://mlflow.internal:5000",
        "MLFLOW_TRACKING_URI: MLFLOW_TRACKING_URI is set, so training runs log to MLflow, but "
        "the 'mlflow' package is not installed in this Python: install it on the training "
        "workers (pip install mlflow) or unset MLFLOW_TRACKING_URI",
    ),
    "WANDB_PROJECT": (
        "spatial-rm",
        "WANDB_PROJECT: WANDB_PROJECT is set, so training runs log to Weights & Biases, but the "
        "'wandb' package is not installed in this Python: install it on the training workers "
        "(pip install wandb) or unset WANDB_PROJECT",
    ),
}


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(point.step, point.value) for point in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def _jsonl_points(path: Path) -> dict[str, list[tuple[int, float]]]:
    points: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text().splitlines():
        data = json.loads(line)
        if "name" in data:
            points.setdefault(data["name"], []).append((data["step"], data["value"]))
    return points


def _same_points(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, line in expected.items():
        assert [step for step, _ in got[name]] == [step for step, _ in line], name
        assert [value for _, value in got[name]] == pytest.approx(
            [value for _, value in line], rel=1e-6, abs=1e-7
        ), name  # TensorBoard keeps float32


def test_the_trainer_logs_every_metric_to_tensorboard_event_files(scenes_folder, tmp_path):
    # Given the trainer with its sinks as its command line opens them (no tracker configured)
    config = config_parse(SMALL)
    sinks = trackers_open(tmp_path, environ={}, config=config.as_json())
    events = Events(tmp_path, sinks=sinks)

    # When it trains two epochs
    try:
        train(config, dataset_dir=scenes_folder, output_dir=tmp_path, events=events)
    finally:
        events.close()

    # Then TensorBoard reads back every point of metrics.jsonl, with its step and value
    expected = _jsonl_points(tmp_path / "metrics.jsonl")
    assert {"train/loss", "val/accuracy", "val/loss", "test/accuracy"} <= set(expected)
    _same_points(_scalars(tmp_path / TENSORBOARD_DIR), expected)
    # And the config is there as text
    accumulated = EventAccumulator(str(tmp_path / TENSORBOARD_DIR))
    accumulated.Reload()
    (text,) = accumulated.Tensors("config/text_summary")
    shown = text.tensor_proto.string_val[0].decode()
    assert json.loads(shown.strip("`\n")) == json.loads(json.dumps(config.as_json()))


@pytest.mark.django_db
def test_a_builtin_run_stores_its_tensorboard_event_files_as_artifacts(tmp_path, ml_client):
    # Given a queued built-in run on a small frozen version
    version = procedural_version(groups=4, seeds=2, size=32)
    config = {"epochs": 2, "batch_size": 8, "image_size": 32, "seed": 1, "num_threads": 1}
    run = training_run_start(version_id=version.pk, config=config, enqueue=False).run

    # When the worker's path executes it
    run = training_run_execute(run_id=run.pk)

    # Then the run's artifacts list its event file
    assert run.status == "succeeded", (run.error, run.log_tail)
    listed = ml_client.get(f"/api/training-runs/{run.pk}/").json()["artifacts"]
    boards = [a for a in listed if a["name"].startswith(f"{TENSORBOARD_DIR}/")]
    assert len(boards) == 1
    assert boards[0]["name"].startswith(f"{TENSORBOARD_DIR}/events.out.tfevents.")
    # And downloaded as an ML engineer does, it holds the points of the run's stored metrics
    download = ml_client.get(boards[0]["download_url"])
    assert download.status_code == 200
    board = tmp_path / boards[0]["name"]
    board.parent.mkdir(parents=True)
    board.write_bytes(b"".join(download.streaming_content))
    assert len(board.read_bytes()) == boards[0]["size"]
    stored: dict[str, list[tuple[int, float]]] = {}
    for name, step, value in TrainingMetric.objects.filter(run=run).order_by("name", "step", "id")\
            .values_list("name", "step", "value"):  # fmt: skip
        stored.setdefault(name, []).append((step, value))
    assert len(stored["train/loss"]) == run.total_steps > 0
    _same_points(_scalars(board.parent), stored)


@pytest.mark.django_db
@pytest.mark.parametrize("switch", sorted(MISSING))
def test_a_tracker_configured_on_the_worker_without_its_library_fails_the_run_at_its_start(
    switch, monkeypatch
):
    # Given a worker configured for a tracker whose library is not installed
    value, message = MISSING[switch]
    monkeypatch.setenv(switch, value)
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(version_id=version.pk, config=SMALL, enqueue=False).run

    # When the worker's path executes a built-in run
    run = training_run_execute(run_id=run.pk)

    # Then the run failed at once with a message naming the setting and the package
    assert (run.status, run.error) == ("failed", message)
    # And nothing ran: no dataset fetched, no trainer started, no metric, no artifact
    assert " launcher dataset " not in run.log_tail
    assert " launcher starting: " not in run.log_tail
    assert (run.artifacts, run.step, TrainingMetric.objects.filter(run=run).count()) == ([], 0, 0)


@pytest.mark.parametrize("switch", sorted(MISSING))
def test_the_trainer_command_refuses_a_configured_tracker_without_its_library(switch, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SMALL))
    value, message = MISSING[switch]
    env = {**os.environ, switch: value, "PYTHONPATH": str(REPO)}

    done = subprocess.run(
        [sys.executable, "-m", "training_bridge.training.trainer",
         "--dataset-dir", str(tmp_path), "--output-dir", str(tmp_path / "out"),
         "--config", str(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr[-2000:]
    assert f"trainer.tracker_missing {message.split(': ', 1)[1]}" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_builtin_trainer_gets_the_workers_tracker_settings_and_their_keys_stay_hidden(
    tmp_path,
):
    # Given a worker configured for MLflow and W&B, with their credentials
    worker = {
        "PATH": "/usr/bin", "SECRET_KEY": "django-secret-abcdefgh",
        "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000", "MLFLOW_EXPERIMENT_NAME": "rm",
        "MLFLOW_TRACKING_TOKEN": "mlflow-token-abcdef", "WANDB_PROJECT": "spatial-rm",
        "WANDB_API_KEY": "wandb-key-0123456789", "UNRELATED": "x",
    }  # fmt: skip
    paths = {name: tmp_path / name for name in ("dataset", "output", "config.json", "cancel")}

    # When the launcher builds the built-in trainer's environment
    env = launcher_child_environment(
        worker_env=worker, run_id=7, work=tmp_path, dataset_dir=paths["dataset"],
        output_dir=paths["output"], config_file=paths["config.json"],
        cancel_file=paths["cancel"], definition=None,
    )  # fmt: skip
    hidden = launcher_hidden_values(worker_env=worker, definition=None)

    # Then the tracker variables reach it, the worker's secrets and other variables do not
    assert {k: v for k, v in env.items() if k.startswith(("MLFLOW_", "WANDB_"))} == {
        k: v for k, v in worker.items() if k.startswith(("MLFLOW_", "WANDB_"))
    }
    assert "SECRET_KEY" not in env and "UNRELATED" not in env
    # And the credentials are among the values no stored text of the run may show
    assert {"mlflow-token-abcdef", "wandb-key-0123456789"} <= set(hidden)
    assert "spatial-rm" not in hidden


@pytest.mark.parametrize(
    "name, key",
    [
        ("train/loss", "train/loss"),
        ("val/accuracy", "val/accuracy"),
        ("val/accuracy/relation/left of", "val/accuracy.relation.left of"),
        ("val/accuracy/config/sd(1.5)", "val/accuracy.config.sd_1.5_"),
        ("seconds", "seconds"),
    ],
)
def test_metric_names_become_mlflow_keys_that_a_file_store_can_hold_side_by_side(name, key):
    # "val/accuracy" and "val/accuracy/relation/..." as paths would be a file and a folder of
    # the same name (mlflow-skinny 3.18's file store failed on it: notes/ml-runs.md)
    assert mlflow_key(name) == key
