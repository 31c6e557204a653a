"""Loading a saved checkpoint folder and scoring with it (what the scoring API builds on).

    scorer = reward_model_load("<run output>/checkpoint")
    scores = scorer.score(["a cat left of a dog"] * 2, [png_bytes_0, png_bytes_1])
    # -> [Score(mean=..., std=None | ...), Score(...)]

Images are bytes (PNG, WebP, JPEG...) or PIL images; each is scored against the caption at the
same position. Scores are computed in eval mode in batches of `batch_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training_bridge.training.trainer.models import model_load
from training_bridge.training.trainer.models.base import RewardNet


@dataclass(frozen=True)
class Score:
    mean: float
    std: float | None


class RewardScorer:
    def __init__(self, net: RewardNet, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.transform = net.transform()

    @property
    def backbone(self) -> str:
        return self.net.backbone

    @property
    def head(self) -> str:
        return self.net.head

    @torch.no_grad()
    def score(
        self, captions: list[str], images: list[bytes | Image.Image], *, batch_size: int = 64
    ) -> list[Score]:
        if len(captions) != len(images):
            raise ValueError("one caption per image is needed")
        scores: list[Score] = []
        for start in range(0, len(images), batch_size):
            chunk_captions = captions[start : start + batch_size]
            unique = list(dict.fromkeys(chunk_captions))
            position = {caption: i for i, caption in enumerate(unique)}
            text = self.net.texts_encode(unique, self.device)
            pixels = self.net.pixels(
                np.stack([self.transform(image) for image in images[start : start + batch_size]]),
                self.device,
            )
            index = torch.tensor([position[c] for c in chunk_captions], device=self.device)
            mean, log_std = self.net(text, pixels, index)
            means = mean.float().cpu().tolist()
            stds = torch.exp(log_std.float()).cpu().tolist() if log_std is not None else None
            scores.extend(Score(mean=m, std=stds[i] if stds else None) for i, m in enumerate(means))
        return scores

    @torch.no_grad()
    def score_pairs(
        self, captions: list[str], images_0: list[bytes], images_1: list[bytes], *,
        batch_size: int = 64,
    ) -> list[tuple[Score, Score]]:  # fmt: skip
        """Both images of each pair, batched the way the trainer's evaluation batches them
        (all first images, then all second images, per chunk)."""
        out: list[tuple[Score, Score]] = []
        for start in range(0, len(captions), batch_size):
            end = start + batch_size
            chunk = captions[start:end]
            scores = self.score(
                chunk + chunk, list(images_0[start:end]) + list(images_1[start:end]),
                batch_size=2 * len(chunk),
            )  # fmt: skip
            out.extend(zip(scores[: len(chunk)], scores[len(chunk) :], strict=True))
        return out


def reward_model_load(folder: Path | str, *, device: str | torch.device = "cpu") -> RewardScorer:
    return RewardScorer(model_load(folder, device=str(device)), device=device)
