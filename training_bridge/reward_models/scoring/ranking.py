"""Rankings within a group, group-normalised advantages, the probability of a pair's preference
and its uncertainty. No torch, no Django.

GRPO-style trainers (Flow-GRPO, DanceGRPO; SpatialScore trains on the top 6 and bottom 6 of
a group of 24) need each group's images ranked by reward: `group_rank` gives the order (best
first; equal means keep their request order), each image's rank and the top-k / bottom-k.

Active learning asks which pairs the model is least sure of. With a Gaussian reward head the
model's preference of a over b is P(a > b) = Phi((mean_a - mean_b) / sqrt(std_a^2 + std_b^2)),
so the pair it is least sure of has the smallest `pair_uncertainty` z = |mean_a - mean_b| /
sqrt(std_a^2 + std_b^2) (z = 0: a coin flip). A scalar head has no std: both count as 1, and
the order is that of |mean_a - mean_b|.

`pair_preference` is that probability itself, P(a preferred over b), the win-rate reward of
Pref-GRPO-style trainers: Phi((mean_a - mean_b) / sqrt(std_a^2 + std_b^2)) for a Gaussian head;
for a scalar head (no std) the Bradley-Terry probability sigmoid(mean_a - mean_b) its training
loss fits. Both stds 0: 1, 0 or 0.5 by the sign of the difference.

`group_advantages` normalises each image's mean within its group, as GRPO does:
(x - mean) / std with the population std (ddof 0, as numpy's default and Flow-GRPO's
per-prompt tracker); a group whose means are all equal (std 0 up to rounding; a group of one
included) gives every image the advantage 0: no preference, no signal. Ties in `group_rank`
keep request order (the earlier image gets the better rank); tied images get the same
advantage.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GroupRanking:
    ranking: list[int]  # positions in the group, best first
    ranks: list[int]  # per position: 1 = best
    top: list[int]
    bottom: list[int]  # the k worst, worst last


def group_rank(means: list[float], *, top_k: int | None = None) -> GroupRanking:
    ranking = sorted(range(len(means)), key=lambda i: (-means[i], i))
    ranks = [0] * len(means)
    for rank, index in enumerate(ranking, start=1):
        ranks[index] = rank
    k = len(means) if top_k is None else min(top_k, len(means))
    return GroupRanking(
        ranking=ranking, ranks=ranks, top=ranking[:k], bottom=ranking[len(ranking) - k :]
    )


def pair_preference(
    mean_a: float, std_a: float | None, mean_b: float, std_b: float | None
) -> float:
    """P(a preferred over b) from the two images' scores (see the module's docstring)."""
    difference = mean_a - mean_b
    if std_a is None or std_b is None:
        return 1.0 / (1.0 + math.exp(-difference)) if difference > -700 else 0.0
    spread = math.sqrt(std_a**2 + std_b**2)
    if spread == 0.0:
        return 0.5 if difference == 0.0 else float(difference > 0)
    return 0.5 * math.erfc(-difference / (spread * math.sqrt(2.0)))


@dataclass(frozen=True)
class GroupStats:
    mean: float
    std: float  # population std of the group's means
    advantages: list[float]


def group_advantages(means: list[float]) -> GroupStats:
    """Each mean normalised within the group: (x - mean) / std; std 0 gives every image 0."""
    count = len(means)
    center = math.fsum(means) / count
    std = math.sqrt(math.fsum((x - center) ** 2 for x in means) / count)
    if std <= 1e-12 * max(1.0, abs(center)):  # equal means, up to the rounding of their sum
        return GroupStats(mean=center, std=0.0, advantages=[0.0] * count)
    return GroupStats(mean=center, std=std, advantages=[(x - center) / std for x in means])


def pair_uncertainty(
    mean_a: float, std_a: float | None, mean_b: float, std_b: float | None
) -> float:
    """z = |mean difference| / combined std (smaller: less sure); a missing std counts as 1."""
    std_a = 1.0 if std_a is None else std_a
    std_b = 1.0 if std_b is None else std_b
    spread = math.sqrt(std_a**2 + std_b**2)
    difference = abs(mean_a - mean_b)
    if spread == 0.0:
        return 0.0 if difference == 0.0 else math.inf
    return difference / spread


def least_certain(scored: Iterable[tuple[float, Any]], count: int) -> list[tuple[float, Any]]:
    """The `count` entries of smallest z (ties broken by the key, so the choice is stable)."""
    return heapq.nsmallest(count, scored)
