"""Bradley-Terry losses over the two images of a pair; `target` is label_0 in {1, 0, 0.5}.

- scalar head: P(image 0 preferred) = sigmoid(s0 - s1); the loss is the binary cross-entropy
  against the soft target, so a tie (0.5) pulls the two scores together. With two images this
  is exactly PickScore's softmax cross-entropy against (label_0, label_1).
- gaussian head: each reward is N(mean, std^2); P(image 0 preferred) is the expectation of
  sigmoid(r0 - r1), approximated (probit, MacKay) by
  sigmoid((m0 - m1) / sqrt(1 + pi/8 * (std0^2 + std1^2))): uncertain pairs are pushed less
  hard, and a pair the model keeps getting wrong grows its std instead of wrecking the means.
  With std -> 0 it is the scalar loss.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

_PI_OVER_8 = math.pi / 8.0


def preference_logit(
    mean_0: torch.Tensor,
    mean_1: torch.Tensor,
    log_std_0: torch.Tensor | None = None,
    log_std_1: torch.Tensor | None = None,
) -> torch.Tensor:
    margin = mean_0 - mean_1
    if log_std_0 is None or log_std_1 is None:
        return margin
    variance = torch.exp(2 * log_std_0) + torch.exp(2 * log_std_1)
    return margin / torch.sqrt(1.0 + _PI_OVER_8 * variance)


def bradley_terry_loss(
    mean_0: torch.Tensor,
    mean_1: torch.Tensor,
    target: torch.Tensor,
    log_std_0: torch.Tensor | None = None,
    log_std_1: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    logit = preference_logit(mean_0, mean_1, log_std_0, log_std_1)
    return F.binary_cross_entropy_with_logits(logit.float(), target.float(), reduction=reduction)
