"""Label models over every vote of a selection: crowd-kit's Dawid-Skene and GLAD.

Each pair is a task, each annotator a worker, each answer (a / b / tie / both_wrong; skips say
nothing about the pair and stay out) a class. The model is fitted once on the selection's
`VoteTable`; a pair's label is its most probable class and its confidence that posterior
probability. crowd-kit (and with it pandas, scipy, scikit-learn) is imported when a model is
fitted, never when the web process starts.

- `dawid_skene`: a confusion matrix per annotator, fitted by EM. Pairs whose answer is known
  (settled by review, or gold pairs when the selection includes them) are given to crowd-kit as
  true labels, so they anchor the annotators' matrices. Each annotator's estimated accuracy
  (sum over classes of prior x P(says c | is c)) goes to the manifest.
- `glad`: one ability per annotator and one difficulty per pair (Whitehill et al., 2009).
  crowd-kit's implementation runs a conjugate-gradient M-step over pandas frames of votes x
  classes: about 2 KB and half a millisecond per vote and EM iteration, so a selection of more
  than GLAD_MAX_VOTES votes is refused, naming `filter_spec.aggregator` (Dawid-Skene fits 3
  million votes in seconds). Each annotator's ability (alpha) goes to the manifest.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from training_bridge.datasets.aggregation.labels import (
    LABELS,
    Aggregate,
    PairVotes,
    vote_agreement,
    votes_count,
)
from training_bridge.datasets.aggregation.specs import SpecInvalid
from training_bridge.datasets.aggregation.votes import NO_LABEL, Posteriors, Votes, VoteTable

SKILL_DIGITS = 4
GLAD_MAX_VOTES = 500_000


@dataclass
class FittedAggregator:
    """What every label model shares: raw vote counts per pair, label and confidence from the
    fitted posteriors."""

    fitted: ClassVar[bool] = True
    library: ClassVar[str | None] = "crowd-kit"
    tie_rule: str = "tie"
    posteriors: Posteriors = field(default_factory=Posteriors.empty, init=False, repr=False)

    def aggregate(self, pair: PairVotes) -> Aggregate:
        counts = votes_count(pair.votes)
        total, agreement = vote_agreement(counts)
        label, confidence = self.posteriors.get(pair.pair_id)
        return Aggregate(
            label=label,
            votes=counts,
            agreement=agreement,
            num_votes=total,
            confidence=confidence,
        )


@contextmanager
def quiet_library() -> Iterator[None]:
    """crowd-kit 1.4 calls pandas APIs that pandas 3 deprecates, warning on every EM step."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def votes_frame(votes: Votes) -> Any:
    """crowd-kit's classification input: task, worker, label (the label code)."""
    import pandas as pd

    return pd.DataFrame(
        {"task": votes.pair, "worker": votes.annotator, "label": votes.code.astype(np.int64)}
    )


def probabilities_matrix(probas: Any) -> tuple[np.ndarray, np.ndarray]:
    """(pair ids, rows x LABELS) from crowd-kit's task x label frame."""
    matrix = probas.reindex(columns=range(len(LABELS)), fill_value=0.0)
    return probas.index.to_numpy(np.int64), matrix.to_numpy(np.float64)


def _one_class(votes: Votes, tie_rule: str) -> Posteriors:
    """Every answer is the same class: nothing to learn, each pair has it for certain."""
    pair = np.unique(votes.pair)
    probabilities = np.zeros((len(pair), len(LABELS)))
    probabilities[:, int(votes.code[0])] = 1.0
    return Posteriors.from_probabilities(pair, probabilities, tie_rule=tie_rule)


def skills_json(series: Any) -> dict[str, float]:
    """A per-annotator series as {annotator id: value}, rounded, in id order."""
    return {str(int(k)): round(float(v), SKILL_DIGITS) for k, v in sorted(series.items())}


@dataclass
class DawidSkeneAggregator(FittedAggregator):
    name: ClassVar[str] = "dawid_skene"
    n_iter: int = 100
    tol: float = 1e-5

    def fit(self, table: VoteTable) -> dict[str, Any]:
        votes = table.votes()
        summary: dict[str, Any] = {"votes": len(votes), "known_answers": 0}
        if len(votes) == 0:
            return summary
        classes = np.unique(votes.code)
        if len(classes) == 1:
            self.posteriors = _one_class(votes, self.tie_rule)
            return summary
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        pairs = table.pairs()
        known = (pairs.known != NO_LABEL) & np.isin(pairs.known, classes)
        known &= np.isin(pairs.pair, votes.pair)
        true_labels = (
            pd.Series(pairs.known[known].astype(np.int64), index=pairs.pair[known])
            if known.any()
            else None
        )
        model = DawidSkene(n_iter=self.n_iter, tol=self.tol)
        with quiet_library():
            probas = model.fit_predict_proba(votes_frame(votes), true_labels)
        pair_ids, probabilities = probabilities_matrix(probas)
        self.posteriors = Posteriors.from_probabilities(
            pair_ids, probabilities, tie_rule=self.tie_rule
        )
        return {
            **summary,
            "known_answers": int(known.sum()),
            "iterations": len(model.loss_history_),
            "annotator_accuracy": skills_json(_accuracy(model)),
        }


def _accuracy(model: Any) -> Any:
    """Each worker's chance of giving the true class: sum over c of prior(c) x P(says c | c)."""
    errors, priors = model.errors_, model.priors_
    total = None
    for label in errors.columns:
        said = errors.xs(label, level="label")[label] if label in errors.index.levels[1] else None
        if said is None:
            continue
        part = said * float(priors.get(label, 0.0))
        total = part if total is None else total.add(part, fill_value=0.0)
    return total


@dataclass
class GladAggregator(FittedAggregator):
    name: ClassVar[str] = "glad"
    n_iter: int = 100
    tol: float = 1e-5

    def fit(self, table: VoteTable) -> dict[str, Any]:
        votes = table.votes()
        summary: dict[str, Any] = {"votes": len(votes)}
        if len(votes) == 0:
            return summary
        if len(votes) > GLAD_MAX_VOTES:
            raise SpecInvalid(
                f"glad fits at most {GLAD_MAX_VOTES:,} votes (crowd-kit holds about 2 KB a "
                f"vote); this selection has {len(votes):,}: use dawid_skene, or fewer queues or "
                "a time range",
                field="filter_spec.aggregator",
            )
        if len(np.unique(votes.code)) == 1:
            self.posteriors = _one_class(votes, self.tie_rule)
            return summary
        from crowdkit.aggregation import GLAD

        model = GLAD(n_iter=self.n_iter, tol=self.tol, silent=True)
        with quiet_library():
            probas = model.fit_predict_proba(votes_frame(votes))
        pair_ids, probabilities = probabilities_matrix(probas)
        self.posteriors = Posteriors.from_probabilities(
            pair_ids, probabilities, tie_rule=self.tie_rule
        )
        return {
            **summary,
            "iterations": len(model.loss_history_),
            "annotator_ability": skills_json(model.alphas_),
        }
