"""The aggregators on simulated crowds whose truth is known (no database): the label models
beat the majority vote where spammers or position-biased annotators vote, and every model
labels the same data the same way twice."""

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from training_bridge.datasets.aggregation import label_models, pairwise
from training_bridge.datasets.aggregation.aggregators import (
    aggregator_build,
    aggregator_options_parse,
)
from training_bridge.datasets.aggregation.labels import PairVotes, TrustWeightedAggregator
from training_bridge.datasets.aggregation.specs import SpecInvalid
from training_bridge.datasets.aggregation.votes import Posteriors, VoteTable

GOOD, ALWAYS_A, ALWAYS_LEFT, RANDOM = "good", "always_a", "always_left", "random"


class Crowd:
    """Pairs with a known winner, each judged by `per_pair` annotators of the given kinds (a
    good annotator is right with probability `accuracy`); who sees candidate a on the left is
    drawn per vote."""

    def __init__(self, kinds, *, pairs=400, per_pair=5, accuracy=0.85, seed=3):
        rng = np.random.default_rng(seed)
        self.truth: dict[int, str] = {}
        self.votes: dict[int, list[tuple[str, int, bool]]] = {}
        self.kinds = kinds
        for pair in range(1, pairs + 1):
            truth = "a" if rng.random() < 0.5 else "b"
            self.truth[pair] = truth
            for annotator in sorted(rng.choice(len(kinds), per_pair, replace=False)):
                left_is_a = bool(rng.random() < 0.5)
                kind = kinds[annotator]
                if kind == GOOD:
                    vote = truth if rng.random() < accuracy else {"a": "b", "b": "a"}[truth]
                elif kind == ALWAYS_A:
                    vote = "a"
                elif kind == ALWAYS_LEFT:
                    vote = "a" if left_is_a else "b"
                else:
                    vote = "a" if rng.random() < 0.5 else "b"
                self.votes.setdefault(pair, []).append((vote, 100 + int(annotator), left_is_a))

    def table(self, *, reverse: bool = False) -> VoteTable:
        table = VoteTable()
        pairs = sorted(self.votes, reverse=reverse)
        for pair in pairs:
            table.pair_add(
                pair_id=pair, prompt_id=pair, candidate_a=2 * pair, candidate_b=2 * pair + 1
            )
            votes = self.votes[pair][::-1] if reverse else self.votes[pair]
            for vote, annotator, left_is_a in votes:
                table.vote_add(pair_id=pair, annotator_id=annotator, vote=vote, left_is_a=left_is_a)
        return table

    def pair_votes(self, pair: int, trust=None) -> PairVotes:
        return PairVotes(
            pair_id=pair,
            votes=tuple(v for v, _, _ in self.votes[pair]),
            annotators=tuple(a for _, a, _ in self.votes[pair]),
            trust=trust or {},
        )

    def accuracy(self, name: str, options=None, *, trust=None) -> tuple[float, dict]:
        aggregator = aggregator_build(*aggregator_options_parse(name, options))
        summary = aggregator.fit(self.table())
        right = 0
        for pair, truth in self.truth.items():
            result = aggregator.aggregate(self.pair_votes(pair, trust))
            assert 0.0 <= result.confidence <= 1.0
            right += result.label == truth
        return right / len(self.truth), summary


SPAMMY = [GOOD] * 4 + [ALWAYS_A, ALWAYS_A, ALWAYS_LEFT, RANDOM, RANDOM]


def test_dawid_skene_and_glad_beat_the_majority_vote_when_spammers_vote():
    crowd = Crowd(SPAMMY)

    majority, _ = crowd.accuracy("majority")
    dawid_skene, summary = crowd.accuracy("dawid_skene")
    glad, glad_summary = crowd.accuracy("glad")

    assert majority < 0.8
    assert dawid_skene >= majority + 0.05
    assert glad > majority
    # the model knows who is who: every good annotator above every spammer
    accuracy = summary["annotator_accuracy"]
    good = [accuracy[str(100 + i)] for i, kind in enumerate(SPAMMY) if kind == GOOD]
    spam = [accuracy[str(100 + i)] for i, kind in enumerate(SPAMMY) if kind != GOOD]
    assert min(good) > max(spam)
    assert summary["votes"] == glad_summary["votes"] == 2000
    assert set(glad_summary["annotator_ability"]) == {str(100 + i) for i in range(len(SPAMMY))}


def test_noisy_bradley_terry_finds_left_biased_annotators_and_beats_the_majority_vote():
    kinds = [GOOD] * 4 + [ALWAYS_LEFT] * 3
    crowd = Crowd(kinds)

    majority, _ = crowd.accuracy("majority")
    noisy_bt, summary = crowd.accuracy("noisy_bt")

    assert noisy_bt >= majority + 0.03
    for index, kind in enumerate(kinds):
        annotator = str(100 + index)
        if kind == ALWAYS_LEFT:
            assert summary["annotator_left_bias"][annotator] > 0.9
            assert summary["annotator_skill"][annotator] < 0.1
        else:
            assert summary["annotator_skill"][annotator] > 0.9


def test_trust_weighting_with_log_odds_beats_the_majority_vote_when_trust_is_known():
    crowd = Crowd(SPAMMY)
    trust = {100 + i: (0.85 if kind == GOOD else 0.5) for i, kind in enumerate(SPAMMY)}

    majority, _ = crowd.accuracy("majority")
    weighted, _ = crowd.accuracy("trust_weighted", {"weighting": "log_odds"}, trust=trust)

    # spammers weigh nothing; a pair without a good annotator is a tie
    assert weighted > majority


def test_trust_weights_votes_by_trust_and_unknown_annotators_by_the_default():
    pair = PairVotes(
        pair_id=1, votes=("a", "b", "b", "skip"), annotators=(1, 2, 3, 4), trust={1: 0.9, 2: 0.3}
    )

    by_trust = TrustWeightedAggregator().aggregate(pair)
    # a: 0.9; b: 0.3 + 0.5 (annotator 3 has no trust); the skip weighs 0.5 in the total
    assert (by_trust.label, by_trust.confidence) == ("a", 0.9 / 2.2)
    assert (by_trust.agreement, by_trust.num_votes) == (0.5, 4)
    assert TrustWeightedAggregator(default_trust=0.7).aggregate(pair).label == "b"

    log_odds = TrustWeightedAggregator(weighting="log_odds").aggregate(pair)
    # b's annotators are at or below chance: they weigh nothing
    weight = math.log(0.9 / 0.1)
    assert log_odds.label == "a"
    assert log_odds.confidence == pytest.approx(1 / (1 + math.exp(-weight)))


def test_bradley_terry_models_rank_images_compared_within_a_prompt():
    rng = np.random.default_rng(0)
    table, truth, votes = VoteTable(), {}, {}
    pair = 0
    for prompt in range(60):
        quality = rng.normal(0, 1.5, 5)
        for a, b in itertools.combinations(range(5), 2):
            pair += 1
            truth[pair] = "a" if quality[a] > quality[b] else "b"
            table.pair_add(
                pair_id=pair,
                prompt_id=prompt,
                candidate_a=prompt * 10 + a,
                candidate_b=prompt * 10 + b,
            )
            p_a = 1 / (1 + math.exp(quality[b] - quality[a]))
            for annotator in range(3):
                vote = "a" if rng.random() < p_a else "b"
                table.vote_add(pair_id=pair, annotator_id=annotator, vote=vote, left_is_a=True)
                votes.setdefault(pair, []).append(vote)

    def accuracy(name: str) -> float:
        aggregator = aggregator_build(*aggregator_options_parse(name, None))
        aggregator.fit(table)
        labels = [
            aggregator.aggregate(PairVotes(pair_id=p, votes=tuple(v))).label == truth[p]
            for p, v in votes.items()
        ]
        return sum(labels) / len(labels)

    majority = accuracy("majority")
    # plain Bradley-Terry (its prior pulls sparse groups together) about as well as the votes;
    # the noisy model, with next to no prior, better
    assert accuracy("bradley_terry") >= max(0.8, majority - 0.02)
    assert accuracy("noisy_bt") >= majority + 0.02


def test_bradley_terry_confidence_is_the_winners_probability_and_ties_are_no_comparison():
    table = VoteTable()
    for pair, votes in ((1, "aab"), (2, "aaa"), (3, "ab"), (4, "")):
        table.pair_add(
            pair_id=pair, prompt_id=pair, candidate_a=10 * pair, candidate_b=10 * pair + 1
        )
        for annotator, vote in enumerate(votes):
            table.vote_add(pair_id=pair, annotator_id=annotator, vote=vote, left_is_a=True)
    table.vote_add(pair_id=4, annotator_id=0, vote="tie", left_is_a=True)

    model = aggregator_build(
        "bradley_terry", {"tie_rule": "tie", "n_iter": 10_000, "tol": 1e-12, "prior": 1}
    )
    summary = model.fit(table)

    assert summary == {"comparisons": 8, "items": 6, "components": 3, "batches": 1}
    two_to_one, three_to_none = model.posteriors.get(1), model.posteriors.get(2)
    assert two_to_one[0] == three_to_none[0] == "a"
    assert 0.5 < two_to_one[1] < three_to_none[1] < 1.0
    assert model.posteriors.get(3) == ("tie", 0.5)
    assert model.posteriors.get(4) == (None, 0.0)


def test_bradley_terry_groups_packed_together_score_as_if_fitted_alone(monkeypatch):
    crowd = Crowd([GOOD] * 3, pairs=40, per_pair=3)
    options = {"tie_rule": "tie", "n_iter": 20_000, "tol": 1e-13, "prior": 1}
    packed = aggregator_build("bradley_terry", options)
    packed.fit(crowd.table())
    monkeypatch.setattr(pairwise, "BATCH_ITEMS", 1)
    alone = aggregator_build("bradley_terry", options)
    assert alone.fit(crowd.table())["batches"] == 40

    np.testing.assert_allclose(packed.posteriors.confidence, alone.posteriors.confidence, atol=1e-6)
    assert (packed.posteriors.label == alone.posteriors.label).all()


def test_a_selection_too_large_for_glad_names_the_aggregator(monkeypatch):
    monkeypatch.setattr(label_models, "GLAD_MAX_VOTES", 1999)
    with pytest.raises(SpecInvalid) as caught:
        aggregator_build(*aggregator_options_parse("glad", None)).fit(Crowd(SPAMMY).table())
    assert caught.value.field == "filter_spec.aggregator"
    assert "glad fits at most 1,999 votes" in caught.value.detail
    assert "this selection has 2,000" in caught.value.detail


def test_a_group_of_images_too_large_for_bradley_terry_names_the_aggregator(monkeypatch):
    monkeypatch.setattr(pairwise, "MAX_COMPONENT_ITEMS", 3)
    table = VoteTable()
    for pair, (a, b) in enumerate(itertools.combinations(range(4), 2), start=1):
        table.pair_add(pair_id=pair, prompt_id=1, candidate_a=a, candidate_b=b)
        table.vote_add(pair_id=pair, annotator_id=1, vote="a", left_is_a=True)
    with pytest.raises(SpecInvalid) as caught:
        aggregator_build(*aggregator_options_parse("bradley_terry", None)).fit(table)
    assert caught.value.field == "filter_spec.aggregator"
    assert "one group has 4 images (at most 3)" in caught.value.detail


@pytest.mark.parametrize("name", ["dawid_skene", "glad", "bradley_terry", "noisy_bt"])
def test_a_label_model_labels_the_same_votes_the_same_way_whatever_their_order(name):
    crowd = Crowd(SPAMMY, pairs=120)
    first = aggregator_build(*aggregator_options_parse(name, None))
    second = aggregator_build(*aggregator_options_parse(name, None))

    assert first.fit(crowd.table()) == second.fit(crowd.table(reverse=True))

    for field in ("pair", "label", "confidence"):
        assert (
            getattr(first.posteriors, field).tobytes()
            == getattr(second.posteriors, field).tobytes()
        )
    assert len(first.posteriors) == 120


def test_known_answers_anchor_dawid_skene():
    crowd = Crowd(SPAMMY, pairs=200)
    table = VoteTable()
    for pair, votes in crowd.votes.items():
        known = crowd.truth[pair] if pair <= 50 else None
        table.pair_add(
            pair_id=pair,
            prompt_id=pair,
            candidate_a=2 * pair,
            candidate_b=2 * pair + 1,
            known=known,
        )
        for vote, annotator, left_is_a in votes:
            table.vote_add(pair_id=pair, annotator_id=annotator, vote=vote, left_is_a=left_is_a)
    model = aggregator_build(*aggregator_options_parse("dawid_skene", None))

    assert model.fit(table)["known_answers"] == 50
    assert all(model.posteriors.get(pair) == (crowd.truth[pair], 1.0) for pair in range(1, 51))


def test_a_model_with_one_class_of_answers_gives_it_for_certain():
    table = VoteTable()
    table.pair_add(pair_id=7, prompt_id=1, candidate_a=1, candidate_b=2)
    table.vote_add(pair_id=7, annotator_id=1, vote="tie", left_is_a=True)
    table.vote_add(pair_id=7, annotator_id=2, vote="skip", left_is_a=False)
    for name in ("dawid_skene", "glad"):
        model = aggregator_build(*aggregator_options_parse(name, None))
        model.fit(table)
        assert model.posteriors.get(7) == ("tie", 1.0)


@pytest.mark.parametrize(("tie_rule", "label"), [("tie", "tie"), ("drop", None)])
def test_equal_posteriors_follow_the_tie_rule(tie_rule, label):
    posteriors = Posteriors.from_probabilities(
        np.array([5, 3]),
        np.array([[0.5, 0.5 - 1e-12, 0, 0], [0.1, 0.2, 0.7, 0]]),
        tie_rule=tie_rule,
    )
    assert posteriors.get(5) == ((label, 0.5) if label else (None, 0.0))
    assert posteriors.get(3) == ("tie", 0.7)
    assert posteriors.get(4) == (None, 0.0)


def _noisy_bt_problem():
    rng = np.random.default_rng(5)
    labels, workers, comparisons = 6, 4, 40
    left = rng.integers(1, labels + 1, comparisons)
    right = (left % labels) + 1
    winner = np.where(rng.random(comparisons) < 0.5, left, right)
    data = np.stack([left, right, winner], axis=1)
    who = rng.integers(0, workers, comparisons)
    x = rng.normal(0, 1, 1 + labels + 2 * workers)
    return x, data, who, labels, workers


def test_the_noisy_bradley_terry_gradient_is_the_objectives():
    x, data, who, labels, workers = _noisy_bt_problem()
    model = pairwise._noisy_bt_class()
    ratio = 0.3  # large enough that the prior's share shows

    numeric = approx_fprime(
        x, lambda v: model._compute_log_likelihood(v, data, who, labels, workers, ratio), 1e-7
    )

    exact = model._compute_gradient(x, data, who, labels, workers, ratio)
    np.testing.assert_allclose(exact, numeric, rtol=1e-4, atol=1e-5)


def test_crowd_kits_own_noisy_bradley_terry_gradient_is_not_its_objectives():
    """Why `_NoisyBT` replaces it (crowd-kit 1.4.2); when this fails, crowd-kit fixed it."""
    from crowdkit.aggregation import NoisyBradleyTerry

    x, data, who, labels, workers = _noisy_bt_problem()
    numeric = approx_fprime(
        x,
        lambda v: NoisyBradleyTerry._compute_log_likelihood(v, data, who, labels, workers, 0.0),
        1e-7,
    )
    theirs = NoisyBradleyTerry._compute_gradient(x, data, who, labels, workers, 0.0)
    assert not np.allclose(theirs, numeric, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(theirs[1:labels], numeric[1:labels], rtol=1e-4, atol=1e-5)
