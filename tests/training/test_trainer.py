"""The built-in trainer on its own (no database): real exports of procedural scenes in, a
checkpoint, metrics and reports out."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import VENV_BIN
from training_bridge.training.trainer.checkpoint import reward_model_load
from training_bridge.training.trainer.config import ConfigError, config_parse
from training_bridge.training.trainer.data import split_read
from training_bridge.training.trainer.events import Events
from training_bridge.training.trainer.loop import train

REPO = Path(__file__).resolve().parents[2]
SMALL = {"epochs": 1, "batch_size": 16, "image_size": 32, "seed": 7, "num_threads": 1}


def _train(folder: Path, out: Path, **config) -> dict:
    events = Events(out)
    try:
        return train(config_parse({**SMALL, **config}), dataset_dir=folder, output_dir=out,
                     events=events)  # fmt: skip
    finally:
        events.close()


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_builtin_trainer_is_deterministic_on_cpu_for_a_seed(scenes_folder, tmp_path):
    first = _train(scenes_folder, tmp_path / "a")
    second = _train(scenes_folder, tmp_path / "b")

    assert _lines(tmp_path / "a") == _lines(tmp_path / "b")
    weights = [
        (tmp_path / run / "checkpoint" / "model.safetensors").read_bytes() for run in ("a", "b")
    ]
    assert weights[0] == weights[1]
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in second.items() if k != "seconds"
    }


def test_parquet_and_webdataset_exports_train_to_the_same_numbers(scenes_folder, tmp_path):
    _train(scenes_folder, tmp_path / "pq", dataset_format="parquet")
    _train(scenes_folder, tmp_path / "wds", dataset_format="webdataset")

    assert _lines(tmp_path / "pq") == _lines(tmp_path / "wds")


def test_a_run_writes_loss_per_step_val_breakdowns_per_epoch_and_a_test_report(
    scenes_folder, tmp_path
):
    summary = _train(scenes_folder, tmp_path, epochs=2, head="gaussian")

    lines = _lines(tmp_path)
    train_pairs = len(split_read(scenes_folder, fmt="parquet", split="train"))
    steps = 2 * math.ceil(train_pairs / 16)
    assert [p["step"] for p in lines if p.get("name") == "train/loss"] == list(range(1, steps + 1))
    names = {p["name"] for p in lines if "name" in p}
    assert {
        "val/accuracy",
        "val/loss",
        "val/mean_std",
        "test/accuracy",
        "train/epoch_loss",
    } <= names
    assert [p["epoch"] for p in lines if p.get("name") == "val/accuracy"] == [1, 2]
    assert {n for n in names if n.startswith("val/accuracy/relation/")} <= {
        f"val/accuracy/relation/{r}" for r in ("left_of", "right_of", "above", "below")
    }
    assert "val/accuracy/num_perturbations/1" in names
    assert "val/accuracy/config/procedural-64" in names
    report = json.loads((tmp_path / "evaluation.json").read_text())
    test_pairs = len(split_read(scenes_folder, fmt="parquet", split="test"))
    assert (report["split"], report["pairs"], len(report["scores"])) == (
        "test", test_pairs, test_pairs
    )  # fmt: skip
    assert set(report["by_relation"]) <= {"left_of", "right_of", "above", "below"}
    assert all(s["std_0"] > 0 and s["std_1"] > 0 for s in report["scores"])
    assert summary["steps"] == steps and summary["test_pairs"] == test_pairs
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == steps
    assert json.loads((tmp_path / "config.json").read_text())["head"] == "gaussian"


def test_the_saved_checkpoint_gives_the_scores_of_the_end_of_training(scenes_folder, tmp_path):
    _train(scenes_folder, tmp_path, epochs=1, head="gaussian")
    report = json.loads((tmp_path / "evaluation.json").read_text())
    table = pq.read_table(next((scenes_folder / "parquet").glob("test-*.parquet"))).to_pydict()

    scorer = reward_model_load(tmp_path / "checkpoint")
    pairs = scorer.score_pairs(table["caption"], table["jpg_0"], table["jpg_1"])

    assert [s["pair_id"] for s in report["scores"]] == table["pair_id"]
    for expected, (score_0, score_1) in zip(report["scores"], pairs, strict=True):
        assert score_0.mean == pytest.approx(expected["score_0"], abs=1e-5)
        assert score_1.mean == pytest.approx(expected["score_1"], abs=1e-5)
        assert score_0.std == pytest.approx(expected["std_0"], rel=1e-4)


def test_early_stopping_stops_when_validation_stops_improving(scenes_folder, tmp_path):
    summary = _train(
        scenes_folder, tmp_path, epochs=6, lr=1e-9,
        early_stopping={"metric": "val/loss", "patience": 1, "min_delta": 0.01},
    )  # fmt: skip

    assert (summary["epochs_run"], summary["best_epoch"], summary["stopped_early"]) == (2, 1, True)


def test_a_cancel_file_stops_the_trainer_at_its_next_step_with_status_3(scenes_folder, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL, "epochs": 50}))
    cancel = tmp_path / "cancel"
    cancel.touch()

    done = subprocess.run(
        [sys.executable, "-m", "training_bridge.training.trainer",
         "--dataset-dir", str(scenes_folder), "--output-dir", str(tmp_path / "out"),
         "--config", str(config), "--cancel-file", str(cancel)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 3, done.stderr[-2000:]
    assert "trainer.stopped reason=cancelled" in done.stderr
    assert not (tmp_path / "out" / "checkpoint").exists()


def test_a_bad_config_file_exits_with_status_2_naming_the_key(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backbone": "resnet"}))

    done = subprocess.run(
        [sys.executable, "-m", "training_bridge.training.trainer", "--dataset-dir", str(tmp_path),
         "--output-dir", str(tmp_path / "out"), "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 2
    assert "backbone: unknown value 'resnet'" in done.stderr


def test_the_torchrun_ddp_path_trains_with_two_processes_on_cpu(scenes_folder, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL, "device": "cpu"}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    done = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node", "2", "-m", "training_bridge.training.trainer",
         "--dataset-dir", str(scenes_folder), "--output-dir", str(tmp_path / "out"),
         "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    train_pairs = len(split_read(scenes_folder, fmt="parquet", split="train"))
    assert summary["steps"] == math.ceil(math.ceil(train_pairs / 2) / 16)  # half per rank
    losses = [p for p in _lines(tmp_path / "out") if p.get("name") == "train/loss"]
    assert len(losses) == summary["steps"]  # rank 0 writes, once per step
    assert reward_model_load(tmp_path / "out" / "checkpoint").backbone == "builtin"


def test_the_tiny_clip_backbone_trains_pickscore_style_and_reloads(
    tiny_clip_folder, scenes_folder, tmp_path
):
    summary = _train(
        scenes_folder, tmp_path, backbone="clip", model_path=str(tiny_clip_folder),
        image_size=None, lr=1e-4,
    )  # fmt: skip

    assert summary["backbone"] == "clip"
    from transformers import CLIPModel

    reloaded = CLIPModel.from_pretrained(tmp_path / "checkpoint" / "clip")
    trained = reward_model_load(tmp_path / "checkpoint").net.clip
    for (name, a), (_, b) in zip(
        reloaded.state_dict().items(), trained.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    original = CLIPModel.from_pretrained(tiny_clip_folder)
    assert not torch.equal(
        original.text_projection.weight, reloaded.text_projection.weight
    )  # fine-tuned, not the starting weights


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"backbone": "resnet"}, "backbone", "unknown value 'resnet'"),
        ({"backbone": "clip"}, "model_path", "needs a local transformers folder"),
        ({"backbone": "clip", "model_path": "/no/such/folder"}, "model_path", "no such folder"),
        ({"head": "beta"}, "head", "unknown value 'beta'"),
        ({"epochs": 0}, "epochs", "must be an integer from 1"),
        ({"lr": "fast"}, "lr", "must be a number"),
        ({"early_stopping": {"metric": "f1"}}, "early_stopping.metric", "unknown metric"),
        ({"devices": 2, "device": "cpu"}, "devices", "several devices need GPUs"),
        ({"device": "tpu"}, "device", "must be auto, cpu, cuda"),
        ({"epoch": 3}, "epoch", "unknown key"),
        ({"hflip": 1.5}, "hflip", "must be a number from 0 to 1"),
    ],
)
def test_a_bad_trainer_config_names_the_key(config, field, message):
    with pytest.raises(ConfigError) as caught:
        config_parse(config)

    assert caught.value.field == field
    assert message in caught.value.message


def test_a_clip_folder_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(ConfigError, match="has no tokenizer"):
        config_parse({"backbone": "clip", "model_path": str(tmp_path)})
