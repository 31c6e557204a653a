"""The tiny random-weight Qwen2.5-VL-style folder the vlm tests train on (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_bridge.training.trainer.models.vlm_tiny import vlm_tiny_build

# 56 px images: 4 x 4 patches of 14 px, merged 2 x 2: 4 image tokens per image
VLM_SMALL = {"backbone": "vlm", "image_size": 56, "lora_rank": 4, "lora_alpha": 8.0,
             "lr": 0.003, "epochs": 1, "batch_size": 8, "seed": 3, "num_threads": 1,
             "max_text_length": 48}  # fmt: skip


def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test module's session fixture calls this (about 3 s)."""
    return vlm_tiny_build(tmp_path_factory.mktemp("vlm") / "tiny-qwen2.5-vl", seed=11)
