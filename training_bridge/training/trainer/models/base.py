"""What every reward network offers the loop and the scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training_bridge.training.trainer.data import ImageTransform

# log std is kept in a range where exp() neither vanishes nor explodes
LOG_STD_MIN, LOG_STD_MAX = -7.0, 5.0


class RewardNet(nn.Module):
    backbone: str
    head: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def texts_encode(self, captions: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def transform(self) -> ImageTransform:
        raise NotImplementedError

    def forward(
        self, text: dict[str, torch.Tensor], images: torch.Tensor, text_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def auxiliary_loss_pop(self) -> torch.Tensor | None:
        """The auxiliary loss of the last forward pass in training, already weighted, to add to
        the preference loss (the built-in network's matching loss); taken, so each is added once.
        None for a network without one."""
        return None

    def save(self, folder: Path) -> None:
        raise NotImplementedError

    def save_gather(self) -> None:
        """A sharded network's other ranks, while rank 0 saves: their part of gathering the
        weights (nothing to do for a network that is not sharded)."""

    def pixels(self, batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W) on `device`."""
        tensor = torch.as_tensor(batch).to(device)
        tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return (tensor - mean) / std

    def meta(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "head": self.head}


def head_split(out: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, 1) or (N, 2) head output -> mean (N,), log std (N,) or None."""
    if head == "gaussian":
        return out[:, 0], out[:, 1].clamp(LOG_STD_MIN, LOG_STD_MAX)
    return out[:, 0], None
