"""The pure dataset maths: specs, label aggregation, splits, canonical lines, diffs."""

import pytest

from training_bridge.datasets.aggregation.diff import diff_streams
from training_bridge.datasets.aggregation.labels import MajorityAggregator, PairVotes
from training_bridge.datasets.aggregation.records import ContentHasher, canonical_line
from training_bridge.datasets.aggregation.specs import (
    SpecInvalid,
    filter_spec_parse,
    split_spec_parse,
)
from training_bridge.datasets.aggregation.splits import split_for_group


def _majority(votes, **options):
    return MajorityAggregator(**options).aggregate(PairVotes(pair_id=1, votes=tuple(votes)))


def test_majority_labels_the_most_voted_choice_with_its_share_as_agreement_and_confidence():
    result = _majority(["a", "a", "b"])
    assert result.label == "a"
    assert result.votes == {"a": 2, "b": 1, "tie": 0, "both_wrong": 0, "skip": 0}
    assert result.agreement == result.confidence == 2 / 3
    assert result.num_votes == 3
    assert result.settled is False


def test_majority_tie_rule_tie_labels_a_split_vote_a_tie():
    result = _majority(["a", "b"], tie_rule="tie")
    assert (result.label, result.agreement, result.confidence) == ("tie", 0.5, 0.5)


def test_majority_tie_rule_drop_leaves_a_split_vote_unlabelled():
    assert _majority(["a", "b", "tie", "tie", "a"], tie_rule="drop").label is None


def test_skips_dilute_the_agreement_but_never_win():
    result = _majority(["skip", "skip", "b"])
    assert (result.label, result.agreement, result.num_votes) == ("b", 1 / 3, 3)
    assert _majority(["skip"]).label is None


def test_both_wrong_majority_is_a_label_of_its_own():
    assert _majority(["both_wrong", "both_wrong", "a"]).label == "both_wrong"


def test_filter_spec_normalises_with_every_default_spelled_out():
    spec = filter_spec_parse({"queues": ["q", 3, "q"], "min_agreement": 1})
    assert spec.as_json() == {
        "queues": [3, "q"],
        "campaigns": [],
        "judged_after": None,
        "judged_before": None,
        "pair_kinds": ["counterfactual", "same_prompt"],
        "include_gold": False,
        "criterion": None,
        "min_judgments": 1,
        "min_agreement": 1.0,
        "min_confidence": 0.0,
        "exclude_ambiguous": False,
        "count_choices": ["left", "right", "tie", "both_wrong"],
        "keep_labels": ["winner", "tie"],
        "annotators": {"mode": "all"},
        "exclude_paused": False,
        "counterfactual_filter": "none",
        "aggregator": "majority",
        "aggregator_options": {"tie_rule": "tie"},
    }


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("majority", {"tie_rule": "tie"}),
        ("trust_weighted", {"tie_rule": "tie", "weighting": "trust", "default_trust": 0.5}),
        ("dawid_skene", {"tie_rule": "tie", "n_iter": 100, "tol": 1e-5}),
        ("glad", {"tie_rule": "tie", "n_iter": 100, "tol": 1e-5}),
        ("bradley_terry", {"tie_rule": "tie", "n_iter": 100, "tol": 1e-5, "prior": 1}),
        (
            "noisy_bt",
            {"tie_rule": "tie", "n_iter": 100, "tol": 1e-5, "regularization_ratio": 1e-5},
        ),
    ],
)
def test_every_aggregator_stores_its_options_with_the_defaults_spelled_out(name, options):
    spec = filter_spec_parse({"aggregator": name})
    assert (spec.as_json()["aggregator"], spec.as_json()["aggregator_options"]) == (
        name,
        dict(sorted(options.items())),
    )


def test_given_options_replace_the_defaults_and_integers_become_numbers():
    spec = filter_spec_parse(
        {"aggregator": "dawid_skene", "aggregator_options": {"n_iter": 7, "tol": 1}}
    )
    assert spec.as_json()["aggregator_options"] == {"n_iter": 7, "tie_rule": "tie", "tol": 1.0}


def test_filter_spec_times_are_read_as_utc():
    spec = filter_spec_parse(
        {"judged_after": "2025-01-01T00:00:00", "judged_before": "2025-01-02T01:00:00+01:00"}
    )
    assert spec.as_json()["judged_after"] == "2025-01-01T00:00:00+00:00"
    assert spec.as_json()["judged_before"] == "2025-01-02T00:00:00+00:00"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ([], "filter_spec", "must be a JSON object, got list"),
        ({"queue": [1]}, "filter_spec.queue", "unknown key"),
        ({"min_agreement": 1.5}, "filter_spec.min_agreement", "must be between 0 and 1, got 1.5"),
        ({"min_agreement": "high"}, "filter_spec.min_agreement", "must be a number"),
        ({"min_judgments": 0}, "filter_spec.min_judgments", "must be at least 1, got 0"),
        ({"min_judgments": True}, "filter_spec.min_judgments", "must be an integer"),
        ({"pair_kinds": []}, "filter_spec.pair_kinds", "must name at least one value"),
        ({"pair_kinds": ["pairs"]}, "filter_spec.pair_kinds[0]", "unknown value 'pairs'"),
        ({"count_choices": ["skip"]}, "filter_spec.count_choices", "besides skip"),
        ({"keep_labels": ["loser"]}, "filter_spec.keep_labels[0]", "unknown value 'loser'"),
        ({"queues": [""]}, "filter_spec.queues[0]", "must be an id or a name"),
        ({"judged_after": "yesterday"}, "filter_spec.judged_after", "ISO 8601"),
        (
            {"judged_after": "2025-02-01T00:00:00Z", "judged_before": "2025-01-01T00:00:00Z"},
            "filter_spec.judged_before",
            "must be later than judged_after",
        ),
        ({"annotators": {"mode": "list"}}, "filter_spec.annotators.ids", "list the annotators"),
        ({"annotators": {"mode": "best"}}, "filter_spec.annotators.mode", "unknown value"),
        (
            {"annotators": {"mode": "quality", "min_quality": 2}},
            "filter_spec.annotators.min_quality",
            "between 0 and 1",
        ),
        ({"counterfactual_filter": "yes"}, "filter_spec.counterfactual_filter", "unknown value"),
        ({"aggregator": "plurality"}, "filter_spec.aggregator", "unknown aggregator"),
        ({"aggregator": ["majority"]}, "filter_spec.aggregator", "unknown aggregator"),
        (
            {"aggregator_options": {"tie_rule": "coin"}},
            "filter_spec.aggregator_options.tie_rule",
            "unknown value 'coin'",
        ),
        ({"aggregator_options": []}, "filter_spec.aggregator_options", "must be a JSON object"),
        (
            {"aggregator": "dawid_skene", "aggregator_options": {"n_iter": 0}},
            "filter_spec.aggregator_options.n_iter",
            "must be from 1 to 10000, got 0",
        ),
        (
            {"aggregator": "glad", "aggregator_options": {"n_iter": 2.5}},
            "filter_spec.aggregator_options.n_iter",
            "must be an integer",
        ),
        (
            {"aggregator": "dawid_skene", "aggregator_options": {"tol": 0}},
            "filter_spec.aggregator_options.tol",
            "must be in (0, 1], got 0",
        ),
        (
            {"aggregator": "noisy_bt", "aggregator_options": {"regularization_ratio": "x"}},
            "filter_spec.aggregator_options.regularization_ratio",
            "must be a number",
        ),
        (
            {"aggregator": "bradley_terry", "aggregator_options": {"regularization_ratio": 1}},
            "filter_spec.aggregator_options.regularization_ratio",
            "unknown option for bradley_terry; known: tie_rule, n_iter, tol, prior",
        ),
        (
            {"aggregator": "trust_weighted", "aggregator_options": {"default_trust": 1}},
            "filter_spec.aggregator_options.default_trust",
            "must be in (0, 1), got 1",
        ),
        (
            {"aggregator": "trust_weighted", "aggregator_options": {"weighting": "square"}},
            "filter_spec.aggregator_options.weighting",
            "unknown value 'square'",
        ),
        (
            {"aggregator": "majority", "aggregator_options": {"n_iter": 5}},
            "filter_spec.aggregator_options.n_iter",
            "unknown option for majority; known: tie_rule",
        ),
        ({"min_confidence": 1.2}, "filter_spec.min_confidence", "must be between 0 and 1"),
        ({"criterion": "two words"}, "filter_spec.criterion", "must be a criterion's name"),
        ({"criterion": 3}, "filter_spec.criterion", "must be a criterion's name"),
        ({"exclude_paused": "yes"}, "filter_spec.exclude_paused", "must be true or false"),
        ({"exclude_ambiguous": 1}, "filter_spec.exclude_ambiguous", "must be true or false"),
    ],
)
def test_malformed_filter_spec_names_the_key(raw, field, message):
    with pytest.raises(SpecInvalid) as caught:
        filter_spec_parse(raw)
    assert caught.value.field == field
    assert message in caught.value.detail


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"ratios": {"train": 0.5, "val": 0.1}}, "split_spec.ratios", "must sum to 1, got 0.6"),
        ({"ratios": {"dev": 1}}, "split_spec.ratios.dev", "unknown key"),
        ({"ratios": {"train": -0.5, "test": 1.5}}, "split_spec.ratios.train", "between 0 and 1"),
        ({"seed": -1}, "split_spec.seed", "must be at least 0"),
        ({"held_out": {"relations": [""]}}, "split_spec.held_out.relations[0]", "non-empty"),
        ({"held_out": {"split": "holdout"}}, "split_spec.held_out.split", "choose one of"),
    ],
)
def test_malformed_split_spec_names_the_key(raw, field, message):
    with pytest.raises(SpecInvalid) as caught:
        split_spec_parse(raw)
    assert caught.value.field == field
    assert message in caught.value.detail


def test_split_is_a_stable_function_of_seed_and_group_with_the_seeded_ratios():
    spec = split_spec_parse({"seed": 7, "ratios": {"train": 0.8, "val": 0.1, "test": 0.1}})
    first = [split_for_group(group_key=f"group-{i}", spec=spec) for i in range(10_000)]
    again = [split_for_group(group_key=f"group-{i}", spec=spec) for i in range(10_000)]
    assert first == again
    shares = {name: first.count(name) / len(first) for name in ("train", "val", "test")}
    assert abs(shares["train"] - 0.8) < 0.02
    assert abs(shares["val"] - 0.1) < 0.02
    assert abs(shares["test"] - 0.1) < 0.02
    other_seed = split_spec_parse({"seed": 8})
    moved = sum(
        split_for_group(group_key=f"group-{i}", spec=other_seed) != first[i] for i in range(10_000)
    )
    assert moved > 1000


def test_held_out_groups_go_to_the_held_out_split_whatever_their_hash():
    spec = split_spec_parse({"ratios": {"train": 1.0}, "held_out": {"split": "val"}})
    assert split_for_group(group_key="g", spec=spec) == "train"
    assert split_for_group(group_key="g", spec=spec, held_out=True) == "val"


def test_canonical_line_sorts_keys_without_spaces_and_keeps_unicode():
    assert canonical_line({"b": 1, "a": {"z": "été", "y": [1, 2]}}) == (
        '{"a":{"y":[1,2],"z":"été"},"b":1}'
    )
    hasher = ContentHasher()
    hasher.add('{"a":1}')
    assert hasher.hexdigest() == "e346432021b04179518d9614f3560ccd71354a4ee101ddcb893d6959a9d6301c"


def test_diff_reports_added_removed_relabelled_and_moved_pairs():
    v = {"a": 2, "b": 1}
    base = iter([(1, "a", "train", v, 0.6), (2, "b", "train", v, 0.6), (3, "tie", "val", v, 0.6),
                 (5, "a", "test", v, 0.6)])  # fmt: skip
    other = iter([(2, "a", "train", v, 0.6), (3, "tie", "test", v, 0.6),
                  (4, "b", "train", v, 0.6), (5, "a", "test", {"a": 3}, 1.0)])  # fmt: skip
    diff = diff_streams(base, other, limit=10).as_json()
    assert diff == {
        "unchanged_means": "same label and same split (votes and agreement may differ)",
        "counts": {"added": 1, "removed": 1, "relabelled": 1, "resplit": 1, "unchanged": 1},
        "added": [4],
        "removed": [1],
        "relabelled": [{"pair_id": 2, "from": "b", "to": "a"}],
        "resplit": [{"pair_id": 3, "from": "val", "to": "test"}],
    }


def test_diff_with_votes_lists_unchanged_pairs_whose_votes_or_agreement_changed():
    same = {"a": 2, "b": 1, "tie": 0}
    base = iter([(1, "a", "train", same, 2 / 3), (2, "a", "train", same, 2 / 3),
                 (3, "b", "val", {"b": 2}, 1.0)])  # fmt: skip
    other = iter([(1, "a", "train", {"a": 2, "b": 1}, 2 / 3), (2, "a", "train", {"a": 3}, 1.0),
                  (3, "b", "val", {"b": 2}, 0.9)])  # fmt: skip

    plain = diff_streams(iter(list(base)), iter(list(other)), limit=10)
    base = iter([(1, "a", "train", same, 2 / 3), (2, "a", "train", same, 2 / 3),
                 (3, "b", "val", {"b": 2}, 1.0)])  # fmt: skip
    other = iter([(1, "a", "train", {"a": 2, "b": 1}, 2 / 3), (2, "a", "train", {"a": 3}, 1.0),
                  (3, "b", "val", {"b": 2}, 0.9)])  # fmt: skip
    voted = diff_streams(base, other, limit=10, votes=True).as_json()

    assert plain.counts["unchanged"] == 3 and "revoted" not in plain.as_json()
    assert voted["counts"] == {
        "added": 0, "removed": 0, "relabelled": 0, "resplit": 0, "unchanged": 3, "revoted": 2,
    }  # fmt: skip
    assert voted["revoted"] == [
        {"pair_id": 2, "votes_from": {"a": 2, "b": 1}, "votes_to": {"a": 3},
         "agreement_from": 2 / 3, "agreement_to": 1.0},
        {"pair_id": 3, "votes_from": {"b": 2}, "votes_to": {"b": 2},
         "agreement_from": 1.0, "agreement_to": 0.9},
    ]  # fmt: skip
