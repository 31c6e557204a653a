"""Rankings within a group and the uncertainty of a pair's preference. No torch, no Django.

GRPO-style trainers (Flow-GRPO, DanceGRPO; SpatialScore trains on the top 6 and bottom 6 of
a group of 24) need each group's images ranked by reward: `group_rank` gives the order (best
first; equal means keep their request order), each image's rank and the top-k / bottom-k.

Active learning asks which pairs the model is least sure of. With a Gaussian reward head the
model's preference of a over b is P(a > b) = Phi((mean_a - mean_b) / sqrt(std_a^2 + std_b^2)),
so the pair it is least sure of has the smallest `pair_uncertainty` z = |mean_a - mean_b| /
sqrt(std_a^2 + std_b^2) (z = 0: a coin flip). A scalar head has no std: both count as 1, and
the order is that of |mean_a - mean_b|.
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
