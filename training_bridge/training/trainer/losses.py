"""Bradley-Terry losses over the two images of a pair; `target` is label_0 in {1, 0, 0.5}.

- scalar head: P(image 0 preferred) = sigmoid(s0 - s1); the loss is the binary cross-entropy
  against the soft target, so a tie (0.5) pulls the two scores together. With two images this
  is exactly PickScore's softmax cross-entropy against (label_0, label_1).
- gaussian head: each reward is N(mean, std^2); P(image 0 preferred) is the expectation of
  sigmoid(r0 - r1), approximated (probit, MacKay) by
  sigmoid((m0 - m1) / sqrt(1 + pi/8 * (std0^2 + std1^2))): uncertain pairs are pushed less
  hard, and a pair the model keeps getting wrong grows its std instead of wrecking the means.
  With std -> 0 it is the scalar loss.
- the uncertainty-aware ranking loss (`loss: uncertainty`, the vlm backbone's default; HPSv3's
  and SpatialScore's form): each reward is N(mean, std^2) and P(image 0 preferred) =
  P(r0 > r1) = Phi((m0 - m1) / sqrt(std0^2 + std1^2)); the loss is the cross-entropy of that
  probability against the soft target (ties 0.5, or the vote share), computed with log Phi
  (`torch.special.log_ndtr`) so it stays finite far in the tails.
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


def uncertainty_probability_z(
    mean_0: torch.Tensor, mean_1: torch.Tensor, log_std_0: torch.Tensor, log_std_1: torch.Tensor
) -> torch.Tensor:
    """z with P(image 0 preferred) = Phi(z) = Phi((m0 - m1) / sqrt(std0^2 + std1^2))."""
    variance = torch.exp(2 * log_std_0) + torch.exp(2 * log_std_1)
    return (mean_0 - mean_1) / torch.sqrt(variance)


def uncertainty_loss(
    mean_0: torch.Tensor,
    mean_1: torch.Tensor,
    target: torch.Tensor,
    log_std_0: torch.Tensor,
    log_std_1: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """-(t log Phi(z) + (1 - t) log Phi(-z)) with z from `uncertainty_probability_z`."""
    dtype = torch.promote_types(mean_0.dtype, torch.float32)  # bf16 in, float32 at least
    z = uncertainty_probability_z(*(t.to(dtype) for t in (mean_0, mean_1, log_std_0, log_std_1)))
    target = target.to(z.dtype)
    loss = -(target * torch.special.log_ndtr(z) + (1 - target) * torch.special.log_ndtr(-z))
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    return loss.mean()


def pair_loss(
    kind: str,
    mean_0: torch.Tensor,
    mean_1: torch.Tensor,
    target: torch.Tensor,
    log_std_0: torch.Tensor | None = None,
    log_std_1: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The config's loss: `uncertainty` (needs log stds) or `bradley_terry`."""
    if kind == "uncertainty":
        if log_std_0 is None or log_std_1 is None:
            raise ValueError("the uncertainty loss needs the gaussian head's log stds")
        return uncertainty_loss(mean_0, mean_1, target, log_std_0, log_std_1, reduction)
    return bradley_terry_loss(mean_0, mean_1, target, log_std_0, log_std_1, reduction)
