"""The reward networks: one interface, three backbones (builtin, clip, vlm).

A network scores (caption, image) pairs: `forward(text, images, text_index)` returns the mean
score of each image against its caption (`text_index` maps images to captions, so the two
images of a pair share one text encoding) and, with the gaussian head, the log standard
deviation. `texts_encode` tokenises captions, `transform` decodes images to the network's
input size and `pixels` turns a uint8 batch into the normalised float tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

from training_bridge.training.trainer.config import TrainerConfig
from training_bridge.training.trainer.models.base import RewardNet

MANIFEST = "reward_model.json"


def model_build(config: TrainerConfig, *, train_captions: list[str]) -> RewardNet:
    if config.backbone == "vlm":
        from training_bridge.training.trainer.models.vlm import VlmNet

        return VlmNet.from_config(config)
    if config.backbone == "clip":
        from training_bridge.training.trainer.models.clip import ClipNet

        return ClipNet.from_folder(
            config.model_path,
            head=config.head,
            image_size=config.image_size or None,
            max_text_length=config.max_text_length,
        )
    from training_bridge.training.trainer.models.builtin import BuiltinNet

    return BuiltinNet.create(
        train_captions,
        head=config.head,
        image_size=config.image_size,
        max_text_length=config.max_text_length,
        match_loss=config.match_loss,
    )


def model_load(folder: Path | str, *, device: str | None = None) -> RewardNet:
    """A network saved by `RewardNet.save` (its folder holds reward_model.json). `device`: where
    it will run (the vlm backbone loads its weights there, in bf16 on a GPU)."""
    folder = Path(folder)
    meta = json.loads((folder / MANIFEST).read_text())
    if meta.get("backbone") == "clip":
        from training_bridge.training.trainer.models.clip import ClipNet

        return ClipNet.load(folder, meta)
    if meta.get("backbone") == "vlm":
        from training_bridge.training.trainer.models.vlm import VlmNet

        return VlmNet.load(folder, meta, device=device)
    if meta.get("backbone") == "builtin":
        from training_bridge.training.trainer.models.builtin import BuiltinNet

        return BuiltinNet.load(folder, meta)
    raise ValueError(f"{folder / MANIFEST}: unknown backbone {meta.get('backbone')!r}")
