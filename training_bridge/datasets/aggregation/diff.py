"""The difference between two versions: pairs added, removed, relabelled (and moved split).

A pair in both versions is `unchanged` when it has the same label and the same split; its votes
and agreement may still differ (more judgments, another filter). With `votes=True` those pairs
are also counted and listed as `revoted` (same label and split, other vote counts or
agreement); `revoted` pairs are a subset of `unchanged`, which keeps its meaning.

Both inputs are streams of (pair_id, label, split, votes, agreement) sorted by pair id, so the
comparison is one merge pass with constant memory whatever the size; only the first `limit`
examples of each kind are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Row = tuple[int, str, str, dict[str, int], float]

UNCHANGED_MEANS = "same label and same split (votes and agreement may differ)"


@dataclass
class VersionDiff:
    limit: int
    votes: bool = False
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "added": 0,
            "removed": 0,
            "relabelled": 0,
            "resplit": 0,
            "unchanged": 0,
        }
    )
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    relabelled: list[dict[str, Any]] = field(default_factory=list)
    resplit: list[dict[str, Any]] = field(default_factory=list)
    revoted: list[dict[str, Any]] = field(default_factory=list)

    def _keep(self, kind: str, item: Any) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        bucket = getattr(self, kind)
        if len(bucket) < self.limit:
            bucket.append(item)

    def as_json(self) -> dict[str, Any]:
        out = {
            "unchanged_means": UNCHANGED_MEANS,
            "counts": dict(self.counts),
            "added": self.added,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "resplit": self.resplit,
        }
        if self.votes:
            out["revoted"] = self.revoted
        return out


def _votes(counts: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in sorted(counts.items()) if count}


def diff_streams(
    base: Iterator[Row], other: Iterator[Row], *, limit: int = 100, votes: bool = False
) -> VersionDiff:
    """Compare `other` against `base`: added = only in other, removed = only in base."""
    diff = VersionDiff(limit=limit, votes=votes)
    if votes:
        diff.counts["revoted"] = 0
    left = next(base, None)
    right = next(other, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left[0] < right[0]):
            diff._keep("removed", left[0])
            left = next(base, None)
        elif left is None or right[0] < left[0]:
            diff._keep("added", right[0])
            right = next(other, None)
        else:
            changed = False
            if left[1] != right[1]:
                diff._keep("relabelled", {"pair_id": left[0], "from": left[1], "to": right[1]})
                changed = True
            if left[2] != right[2]:
                diff._keep("resplit", {"pair_id": left[0], "from": left[2], "to": right[2]})
                changed = True
            if not changed:
                diff.counts["unchanged"] += 1
                before, after = _votes(left[3]), _votes(right[3])
                if votes and (before != after or left[4] != right[4]):
                    diff._keep(
                        "revoted",
                        {
                            "pair_id": left[0],
                            "votes_from": before,
                            "votes_to": after,
                            "agreement_from": left[4],
                            "agreement_to": right[4],
                        },
                    )
            left = next(base, None)
            right = next(other, None)
    return diff
