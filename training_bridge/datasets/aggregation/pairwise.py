"""Pairwise label models: crowd-kit's Bradley-Terry and noisy Bradley-Terry over the left/right
votes of a selection.

The items compared are images *as judged against a prompt*: (the pair's prompt, candidate), so
an image judged against its own prompt and against an original one (a counterfactual pair) are
two items. Each left/right vote is a comparison (worker, left item, right item, winner); ties,
both-wrong votes and skips are not comparisons, so a pair without a left/right vote gets no
label from these models. A pair's label is its higher-scored candidate and its confidence the
model's probability that this candidate wins: p_a / (p_a + p_b) for Bradley-Terry,
sigmoid(s_a - s_b) for noisy Bradley-Terry. Equal scores follow `tie_rule`.

- `bradley_terry`: crowd-kit's `BradleyTerry` (Hunter's MM algorithm) holds a dense items x
  items win matrix, so it is fitted per connected component of the comparison graph (images
  only meet within a prompt group), small components packed together up to BATCH_ITEMS items
  (a block-diagonal matrix: components stay independent). Without a prior, a group whose
  comparisons are not strongly connected (a unanimous pair, an image that never loses) has no
  finite maximum-likelihood scores and crowd-kit's iteration divides 0 by 0; so each image
  also wins and loses `prior` times (1 by default) against an anchor item of its group. Then a
  pair judged alone gets 0.71 for 1 to 0, 0.84 for 3 to 0 and 0.62 for 2 to 1: confidence
  grows with evidence and never reaches 1.
  A component of more than MAX_COMPONENT_ITEMS images is refused, naming
  `filter_spec.aggregator`.
- `noisy_bt`: crowd-kit's `NoisyBradleyTerry` adds a skill and a left-position bias per
  annotator, so it is fitted once on every comparison, left and right as the annotator saw
  them. crowd-kit 1.4's gradient puts the annotators' terms at the wrong offsets (and keeps
  only their last comparison) and loops in Python over comparisons, and its objective adds the
  prior on scores with the wrong sign (its gradient has the right one); `_NoisyBT` replaces
  those two functions with the same model's objective and its exact, vectorised gradient (the
  tests check it against finite differences). Each annotator's skill and bias go to the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from training_bridge.datasets.aggregation.label_models import (
    FittedAggregator,
    quiet_library,
    skills_json,
)
from training_bridge.datasets.aggregation.labels import LABELS
from training_bridge.datasets.aggregation.specs import SpecInvalid
from training_bridge.datasets.aggregation.votes import Posteriors, VoteTable

BATCH_ITEMS = 128
MAX_COMPONENT_ITEMS = 4000  # a dense 4000 x 4000 win matrix is ~128 MB per array


@dataclass(frozen=True)
class Comparisons:
    pair: np.ndarray  # pair ids with at least one left/right vote, ascending
    item_a: np.ndarray  # their items (candidate a, candidate b as judged against the prompt)
    item_b: np.ndarray
    items: int
    vote_pair: np.ndarray  # per left/right vote: index into `pair`
    worker: np.ndarray
    left: np.ndarray  # items as shown
    right: np.ndarray
    winner: np.ndarray


def comparisons(table: VoteTable) -> Comparisons:
    votes = table.votes(kinds=("a", "b"))
    pairs = table.pairs()
    at = np.searchsorted(pairs.pair, votes.pair)
    compared = np.unique(at)
    keys = np.concatenate(
        [
            np.stack([pairs.prompt[compared], pairs.candidate_a[compared]], axis=1),
            np.stack([pairs.prompt[compared], pairs.candidate_b[compared]], axis=1),
        ]
    )
    if len(keys):
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        unique, inverse = keys, np.zeros(0, np.int64)
    item_a, item_b = inverse[: len(compared)], inverse[len(compared) :]
    vote_pair = np.searchsorted(compared, at)
    a, b = item_a[vote_pair], item_b[vote_pair]
    return Comparisons(
        pair=pairs.pair[compared],
        item_a=item_a,
        item_b=item_b,
        items=len(unique),
        vote_pair=vote_pair,
        worker=votes.annotator,
        left=np.where(votes.left_is_a, a, b),
        right=np.where(votes.left_is_a, b, a),
        winner=np.where(votes.code == 0, a, b),
    )


def _posteriors(pairs: Comparisons, p_a: np.ndarray, tie_rule: str) -> Posteriors:
    probabilities = np.zeros((len(pairs.pair), len(LABELS)))
    probabilities[:, 0] = p_a
    probabilities[:, 1] = 1.0 - p_a
    return Posteriors.from_probabilities(pairs.pair, probabilities, tie_rule=tie_rule)


def _frame(c: Comparisons, rows: slice | np.ndarray) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "worker": c.worker[rows],
            "left": c.left[rows],
            "right": c.right[rows],
            "label": c.winner[rows],
        }
    )


@dataclass
class BradleyTerryAggregator(FittedAggregator):
    name: ClassVar[str] = "bradley_terry"
    n_iter: int = 100
    tol: float = 1e-5
    prior: int = 1

    def fit(self, table: VoteTable) -> dict[str, Any]:
        c = comparisons(table)
        summary: dict[str, Any] = {"comparisons": len(c.winner), "items": c.items}
        if len(c.pair) == 0:
            return summary
        import pandas as pd
        from crowdkit.aggregation import BradleyTerry
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(c.pair)), (c.item_a, c.item_b)), shape=(c.items, c.items))
        count, component = connected_components(graph, directed=False)
        sizes = np.bincount(component, minlength=count)
        if sizes.max() > MAX_COMPONENT_ITEMS:
            raise SpecInvalid(
                f"bradley_terry fits each group of connected images at once, and one group has "
                f"{int(sizes.max())} images (at most {MAX_COMPONENT_ITEMS}); use noisy_bt or "
                "dawid_skene",
                field="filter_spec.aggregator",
            )
        # The prior: each image wins and loses `prior` times against its group's anchor (an
        # extra item per group), so every group is strongly connected and every score finite.
        items = np.arange(c.items)
        anchor = c.items + component
        virtual = np.repeat(items, self.prior)
        left = np.concatenate([c.left, anchor[virtual], anchor[virtual]])
        right = np.concatenate([c.right, virtual, virtual])
        winner = np.concatenate([c.winner, virtual, anchor[virtual]])
        # Groups in order, packed into batches of about BATCH_ITEMS items: a block-diagonal
        # win matrix, each group's scores as if fitted alone.
        batch_of = np.zeros(count, np.int64)
        batch, filled = 0, 0
        for index, size in enumerate((sizes + 1).tolist()):
            if filled and filled + size > BATCH_ITEMS:
                batch, filled = batch + 1, 0
            batch_of[index] = batch
            filled += size
        row_batch = batch_of[component[right]]
        order = np.argsort(row_batch, kind="stable")
        bounds = np.searchsorted(row_batch[order], np.arange(batch + 2))
        scores = np.zeros(c.items + count)
        for first, last in zip(bounds[:-1], bounds[1:], strict=False):
            rows = order[first:last]
            frame = pd.DataFrame({"left": left[rows], "right": right[rows], "label": winner[rows]})
            with quiet_library():
                model = BradleyTerry(n_iter=self.n_iter, tol=self.tol).fit(frame)
            scores[model.scores_.index.to_numpy(np.int64)] = model.scores_.to_numpy(np.float64)
        s_a, s_b = scores[c.item_a], scores[c.item_b]
        total = s_a + s_b
        p_a = np.divide(s_a, total, out=np.full(len(total), 0.5), where=total > 0)
        self.posteriors = _posteriors(c, p_a, self.tie_rule)
        return {**summary, "components": int(count), "batches": int(batch + 1)}


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _noisy_bt_terms(x, np_data, np_workers, labels, workers):
    """Per comparison: y (+1 when the left item won), the log of each branch of the mixture
    (the annotator compares: sigmoid(gamma) sigmoid(y (s_left - s_right)); or answers by
    position: (1 - sigmoid(gamma)) sigmoid(y q)) and their sigmoids."""
    left, right, label = np_data[:, 0], np_data[:, 1], np_data[:, 2]
    y = np.where(left == label, 1.0, -1.0)
    yd = y * (x[left] - x[right])
    q = x[1 + labels + np_workers]
    gamma = x[1 + labels + workers + np_workers]
    log_compare = _log_sigmoid(gamma) + _log_sigmoid(yd)
    log_position = _log_sigmoid(-gamma) + _log_sigmoid(y * q)
    return y, yd, q, gamma, log_compare, log_position


def _noisy_bt_class():
    """crowd-kit's NoisyBradleyTerry with its objective and gradient made right (see above)."""
    from crowdkit.aggregation import NoisyBradleyTerry
    from scipy.special import expit

    class _NoisyBT(NoisyBradleyTerry):
        @staticmethod
        def _compute_log_likelihood(x, np_data, np_workers, labels, workers, regularization_ratio):
            *_, log_compare, log_position = _noisy_bt_terms(x, np_data, np_workers, labels, workers)
            total = np.logaddexp(log_compare, log_position).sum()
            scores = x[1 : labels + 1]
            prior = (_log_sigmoid(x[0] - scores) + _log_sigmoid(scores - x[0])).sum()
            return float(-total - regularization_ratio * prior)

        @staticmethod
        def _compute_gradient(x, np_data, np_workers, labels, workers, regularization_ratio):
            y, yd, q, gamma, log_compare, log_position = _noisy_bt_terms(
                x, np_data, np_workers, labels, workers
            )
            # the share of the comparing branch in each comparison's likelihood
            compare = np.exp(log_compare - np.logaddexp(log_compare, log_position))
            d_score = compare * expit(-yd) * y
            d_bias = (1.0 - compare) * expit(-y * q) * y
            d_skill = compare - expit(gamma)
            gradient = np.zeros_like(x)
            gradient += np.bincount(np_data[:, 0], d_score, minlength=len(x))
            gradient -= np.bincount(np_data[:, 1], d_score, minlength=len(x))
            start = 1 + labels
            gradient[start : start + workers] += np.bincount(np_workers, d_bias, workers)
            gradient[start + workers :] += np.bincount(np_workers, d_skill, workers)
            pull = np.tanh((x[1 : labels + 1] - x[0]) / 2.0)
            gradient[1 : labels + 1] -= regularization_ratio * pull
            gradient[0] += regularization_ratio * pull.sum()
            return -gradient

    return _NoisyBT


@dataclass
class NoisyBradleyTerryAggregator(FittedAggregator):
    name: ClassVar[str] = "noisy_bt"
    n_iter: int = 100
    tol: float = 1e-5
    regularization_ratio: float = 1e-5

    def fit(self, table: VoteTable) -> dict[str, Any]:
        c = comparisons(table)
        summary: dict[str, Any] = {"comparisons": len(c.winner), "items": c.items}
        if len(c.pair) == 0:
            return summary
        from scipy.special import expit, logit

        model = _noisy_bt_class()(
            n_iter=self.n_iter,
            tol=self.tol,
            regularization_ratio=self.regularization_ratio,
            random_state=0,
        )
        with quiet_library():
            model.fit(_frame(c, slice(None)))
        raw = np.zeros(c.items)
        scores = np.clip(model.scores_.to_numpy(np.float64), 1e-15, 1 - 1e-15)
        raw[model.scores_.index.to_numpy(np.int64)] = logit(scores)
        p_a = expit(raw[c.item_a] - raw[c.item_b])
        self.posteriors = _posteriors(c, p_a, self.tie_rule)
        return {
            **summary,
            "annotator_skill": skills_json(model.skills_),
            "annotator_left_bias": skills_json(model.biases_),
        }
