"""Label aggregation: the votes of one pair become its label, its confidence, vote counts and
agreement.

A vote is one of `a`, `b` (the candidate the annotator preferred, in the pair's own order),
`tie`, `both_wrong` or `skip`. Every aggregator returns an `Aggregate` per pair:

- `label`: a / b / tie / both_wrong, or None when the pair gets no label (e.g. leaders tied under
  `tie_rule: drop`, or only skips);
- `votes`, `num_votes`, `agreement`: the raw vote counts and the share of the leading answer
  (skips included when the spec counts them), the same whatever the aggregator;
- `confidence`: the aggregator's own number in [0, 1] for its label (a vote share, a weighted
  share or a model's posterior probability; each aggregator says which);
- `settled`: the label is the adjudicated answer of a review queue.

Two kinds of aggregators (`aggregators.AGGREGATORS` lists them): per-pair ones (`majority`,
`trust_weighted`, here) decide from the pair's own votes; label models (`dawid_skene`, `glad`
in `label_models`, `bradley_terry`, `noisy_bt` in `pairwise`) first `fit` on every vote of the
selection (`votes.VoteTable`) and then look each pair up. Equal leaders (within TIE_EPSILON)
follow `tie_rule` everywhere: `tie` labels the pair a tie, `drop` leaves it unlabelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from training_bridge.datasets.aggregation.votes import VoteTable

VOTE_KINDS = ("a", "b", "tie", "both_wrong", "skip")
LABELS = ("a", "b", "tie", "both_wrong")
TIE_RULES = ("tie", "drop")
# Scores or probabilities this close count as equal (float noise must not pick a winner).
TIE_EPSILON = 1e-9
# An annotator without a trust score: the gold posterior mean before any gold answer
# (annotation.stats.posterior_accuracy(0, 0)), i.e. "no evidence either way".
DEFAULT_TRUST = 0.5


@dataclass(frozen=True)
class Aggregate:
    label: str | None
    votes: dict[str, int]
    agreement: float
    num_votes: int
    confidence: float = 0.0
    settled: bool = False


@dataclass(frozen=True)
class PairVotes:
    """One pair's counted votes: kinds, who gave them, and the trust of those with a score."""

    pair_id: int
    votes: tuple[str, ...]
    annotators: tuple[int, ...] = ()
    trust: Mapping[int, float] = field(default_factory=dict)


class Aggregator(Protocol):
    name: ClassVar[str]
    # Needs every vote of the selection (`fit`) before it can label any pair.
    fitted: ClassVar[bool]
    # Built on crowd-kit (the manifest records the library's version).
    library: ClassVar[str | None]

    def fit(self, table: VoteTable) -> dict[str, Any]:
        """Learn from all votes; returns a summary for the manifest (empty for per-pair ones)."""

    def aggregate(self, pair: PairVotes) -> Aggregate: ...


def votes_count(votes: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(VOTE_KINDS, 0)
    for vote in votes:
        counts[vote] += 1
    return counts


def vote_agreement(counts: dict[str, int]) -> tuple[int, float]:
    """(counted votes, share of the leading answer); skips count in the total, never lead."""
    total = sum(counts.values())
    top = max(counts[label] for label in LABELS)
    return total, (top / total if total else 0.0)


def leader(scores: Mapping[str, float], tie_rule: str) -> str | None:
    """The label with the highest score; equal leaders make a tie (or no label under `drop`)."""
    if not scores:
        return None
    top = max(scores.values())
    leaders = [label for label in LABELS if label in scores and top - scores[label] <= TIE_EPSILON]
    if len(leaders) == 1:
        return leaders[0]
    return "tie" if tie_rule == "tie" else None


def aggregate_known(pair: PairVotes, *, label: str, settled: bool) -> Aggregate:
    """A pair whose answer is known (settled by review, or a gold pair's): that answer, with
    confidence 1; the vote counts stay what the annotators said."""
    counts = votes_count(pair.votes)
    total, agreement = vote_agreement(counts)
    return Aggregate(
        label=label,
        votes=counts,
        agreement=agreement,
        num_votes=total,
        confidence=1.0,
        settled=settled,
    )


@dataclass(frozen=True)
class MajorityAggregator:
    """The most voted of a / b / tie / both_wrong wins; skips only dilute the agreement.

    Confidence = agreement: the leading answer's share of the counted votes.
    """

    name: ClassVar[str] = "majority"
    fitted: ClassVar[bool] = False
    library: ClassVar[str | None] = None
    tie_rule: str = "tie"

    def fit(self, table: VoteTable) -> dict[str, Any]:
        return {}

    def aggregate(self, pair: PairVotes) -> Aggregate:
        counts = votes_count(pair.votes)
        total, agreement = vote_agreement(counts)
        voted = {label: float(counts[label]) for label in LABELS if counts[label]}
        label = leader(voted, self.tie_rule)
        return Aggregate(
            label=label,
            votes=counts,
            agreement=agreement,
            num_votes=total,
            confidence=agreement if label is not None else 0.0,
        )


@dataclass(frozen=True)
class TrustWeightedAggregator:
    """Votes weighted by their annotator's trust in the pair's queue (the selection supplies
    it: the queue's gold posterior, else the annotator's overall quality score); an annotator
    with neither weighs `default_trust` (0.5 by default, the gold posterior before any answer).

    - `weighting: trust`: a vote weighs the trust itself; confidence = the label's share of the
      weight of the counted votes (skips included when counted, as for the agreement).
    - `weighting: log_odds`: a vote weighs log(t / (1 - t)), t clipped to [0.5, 0.99] (an
      annotator at or below chance weighs nothing); confidence = the posterior of a one-coin
      model with those accuracies: softmax of the summed weights over the answers given.
    """

    name: ClassVar[str] = "trust_weighted"
    fitted: ClassVar[bool] = False
    library: ClassVar[str | None] = None
    tie_rule: str = "tie"
    weighting: str = "trust"
    default_trust: float = DEFAULT_TRUST

    def fit(self, table: VoteTable) -> dict[str, Any]:
        return {}

    def _weight(self, trust: float) -> float:
        if self.weighting == "trust":
            return min(max(trust, 0.0), 1.0)
        clipped = min(max(trust, 0.5), 0.99)
        return math.log(clipped / (1 - clipped))

    def aggregate(self, pair: PairVotes) -> Aggregate:
        counts = votes_count(pair.votes)
        total, agreement = vote_agreement(counts)
        scores: dict[str, float] = {}
        weight_total = 0.0
        for vote, annotator in zip(pair.votes, pair.annotators, strict=True):
            weight = self._weight(pair.trust.get(annotator, self.default_trust))
            weight_total += weight
            if vote != "skip":
                scores[vote] = scores.get(vote, 0.0) + weight
        label = leader(scores, self.tie_rule)
        confidence = 0.0
        if label is not None:
            top = max(scores.values())
            if self.weighting == "trust":
                confidence = top / weight_total if weight_total > 0 else 0.0
            else:
                confidence = 1 / sum(math.exp(score - top) for score in scores.values())
        return Aggregate(
            label=label,
            votes=counts,
            agreement=agreement,
            num_votes=total,
            confidence=confidence,
        )
