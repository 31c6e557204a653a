"""Fixtures of the reward-model tests: checkpoints made with the trainer's code, stored in the
default storage and registered through the registry service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reward.checkpoints import (
    builtin_checkpoint,
    checkpoint_upload,
    clip_checkpoint,
    tiny_clip_folder,
)
from training_bridge.models import RewardModel


@pytest.fixture(autouse=True)
def _reward_cache(settings, tmp_path) -> None:
    """Each test fetches checkpoints into its own cache folder, and looks the promoted model up
    on every request (a test of the refresh interval sets its own)."""
    settings.REWARD_MODEL_CACHE_DIR = str(tmp_path / "reward-cache")
    settings.REWARD_SCORING_REFRESH_SECONDS = 0


@pytest.fixture(scope="session")
def builtin_folders(tmp_path_factory) -> Callable[..., Path]:
    """Built-in checkpoints (untrained, trainer format) by (seed, head), made once a session."""
    made: dict[tuple, Path] = {}

    def get(seed: int = 0, head: str = "gaussian") -> Path:
        if (seed, head) not in made:
            folder = tmp_path_factory.mktemp("builtin") / f"s{seed}-{head}"
            made[(seed, head)] = builtin_checkpoint(folder, seed=seed, head=head)
        return made[(seed, head)]

    return get


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    """A CLIP-style checkpoint (trainer format) from a tiny random-weight transformers model."""
    base = tiny_clip_folder(tmp_path_factory.mktemp("clip") / "tiny-clip")
    return clip_checkpoint(tmp_path_factory.mktemp("clip-rm") / "ckpt", clip_folder=base, seed=3)


@pytest.fixture
def register(db) -> Callable[..., RewardModel]:
    """Upload a checkpoint folder and register it as the next version of `name`."""
    from training_bridge.reward_models.services.registry import reward_model_register_checkpoint

    def make(folder: Path, *, name: str = "spatial-rm", promote: bool = False) -> RewardModel:
        key = checkpoint_upload(folder)
        model = reward_model_register_checkpoint(name=name, artifact_key=key).model
        if promote:
            from training_bridge.reward_models.services.registry import reward_model_promote

            model = reward_model_promote(model_id=model.pk)
        return model

    return make
