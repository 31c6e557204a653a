"""bench/gpu/vlm.py stays ready for a lent GPU: its tiny mode runs the same stages end to end on
the CPU (build, the trainer's LoRA run, the checkpoint loaded by the scoring engine, the bare
forward pass against the scorer and the engine) and prints its figures as one JSON line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu" / "vlm.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_the_tiny_mode_trains_scores_and_prints_one_json_line(tmp_path):
    out = tmp_path / "out"

    done = _run("--shape", "tiny", "--out", str(out))

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert json.loads((out / "result.json").read_text()) == result
    assert result["bench"] == "gpu-vlm"
    assert result["device"] == "cpu"
    assert result["fits_7b_one_gpu"] is None
    assert set(result["shapes"]) == {"tiny"}
    tiny = result["shapes"]["tiny"]
    assert tiny["skipped"] == []
    train = tiny["train"]
    assert train["fits"] is True
    assert train["checkpoint"] is True
    assert train["stopped_at_limit"] is False
    assert train["steps"] == train["steps_planned"] == 6
    assert train["batch_pairs"] == 4
    assert train["lora_rank"] == 32
    assert 0 < train["trainable_parameters"] < train["parameters"]
    assert train["pairs_per_s"] > 0
    assert train["s_per_step"] > 0
    assert train["peak_gpu_memory_gib"] is None
    score = tiny["score"]
    assert "engine_skipped" not in score
    for batch in ("32", "64"):
        figures = score[batch]
        assert set(figures) == {
            "forward_img_s", "scorer_img_s", "engine_img_s", "engine_2_clients_img_s",
            "scorer_overhead_pct", "engine_overhead_pct", "engine_2_clients_overhead_pct",
            "peak_gpu_memory_gib",
        }  # fmt: skip
        for key in ("forward_img_s", "scorer_img_s", "engine_img_s", "engine_2_clients_img_s"):
            assert figures[key] > 0
        for key in ("scorer_overhead_pct", "engine_overhead_pct"):
            assert math.isfinite(figures[key]) and figures[key] < 100
    # the model folder is removed after its shape; the run's checkpoint stays under --out
    assert not (out / "tiny" / "model").exists()
    assert (out / "tiny" / "run" / "checkpoint" / "adapter" / "adapter_config.json").is_file()
    adapter = json.loads((out / "tiny" / "run" / "checkpoint" / "reward_model.json").read_text())
    assert adapter["lora"]["r"] == 32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shape", "all"], "need a CUDA GPU"),
        (["--shape", "tiny", "--batches", "32,x"], "--batches"),
    ],
)
def test_a_run_it_cannot_do_here_is_refused_with_a_message(tmp_path, args, message):
    import torch

    if args[1] == "all" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the full run would start")
    out = tmp_path / "out"

    done = _run(*args, "--out", str(out), timeout=120)

    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("tied", [False, True], ids=["7b-like untied", "3b-like tied"])
def test_the_memory_estimate_counts_the_parameters_the_model_has(tmp_path, tied):
    """bench/gpu/memory_estimate.py's arithmetic against a real model of distinct small
    dimensions: every weight and bias (the LM head tied to the embeddings or not), and the
    LoRA r=32 adapters peft adds."""
    sys.path.insert(0, str(REPO / "bench" / "gpu"))
    from memory_estimate import lora_parameters, parameters

    from training_bridge.training.trainer.config import config_parse
    from training_bridge.training.trainer.models.vlm import VlmNet
    from training_bridge.training.trainer.models.vlm_tiny import vlm_tiny_build

    shape = {"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 6,
             "num_key_value_heads": 2, "intermediate_size": 160, "vision_depth": 2,
             "vision_hidden_size": 48, "vision_num_heads": 3, "vision_intermediate_size": 80,
             "vocab_size": 400, "tie_word_embeddings": tied}  # fmt: skip
    folder = vlm_tiny_build(tmp_path / "model", **shape, seed=1)
    config = config_parse({"backbone": "vlm", "model_path": str(folder), "lora_rank": 32,
                           "image_size": 56, "device": "cpu"})  # fmt: skip

    net = VlmNet.from_config(config)

    model = net.vlm.get_base_model()
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    vision = sum(p.numel() for p in model.model.visual.parameters())
    assert model.config.text_config.vocab_size == 400
    assert parameters(shape) == {"language": frozen - vision, "vision": vision, "total": frozen}
    head = 2 * shape["hidden_size"] + 2
    assert net.trainable_parameters() == lora_parameters(shape, 32) + head
