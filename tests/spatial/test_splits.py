import pytest

from generation_workers.spatial import PromptSpecError, SplitPolicy, assign_split, group_key_for
from generation_workers.spatial.splits import split_point


@pytest.mark.parametrize(
    ("key", "seed", "split"),
    [
        ("cat+dog", 0, "train"),
        ("cat+dog", 1, "test"),
        ("airplane+banana", 0, "test"),
        ("airplane+bowl", 0, "test"),
        ("airplane+bicycle", 0, "val"),
        ("airplane+boat", 0, "val"),
        ("airplane+apple", 0, "train"),
        ("person+zebra", 1, "test"),
        ("kitchen-0042", 0, "train"),
    ],
)
def test_pinned_splits_are_stable_across_runs_and_machines(key, seed, split):
    assert assign_split(key, seed=seed) == split


def test_split_points_are_pinned_blake2b_fractions():
    assert round(split_point("cat+dog"), 6) == 0.037906
    assert round(split_point("airplane+banana"), 6) == 0.944452


def test_ratios_are_laid_out_in_order():
    assert assign_split("airplane+banana", ratios={"train": 0.5, "test": 0.5}) == "test"
    assert assign_split("cat+dog", ratios={"train": 0.5, "test": 0.5}) == "train"
    assert assign_split("cat+dog", ratios={"train": 0.0, "test": 1.0}) == "test"


def test_shares_follow_the_ratios_over_many_groups():
    splits = [assign_split(f"group-{i}") for i in range(20_000)]
    assert abs(splits.count("train") / 20_000 - 0.8) < 0.01
    assert abs(splits.count("val") / 20_000 - 0.1) < 0.01


@pytest.mark.parametrize(
    ("ratios", "field"),
    [
        ({"train": 0.8, "test": 0.1}, "ratios"),
        ({"train": -0.2, "test": 1.2}, "ratios.train"),
        ({}, "ratios"),
        ({"train": "0.9", "test": 0.1}, "ratios.train"),
    ],
)
def test_bad_ratios_are_rejected(ratios, field):
    with pytest.raises(PromptSpecError) as caught:
        assign_split("cat+dog", ratios=ratios)
    assert caught.value.field == field


def test_held_out_objects_and_relations_force_the_held_out_split():
    policy = SplitPolicy(
        held_out_objects=frozenset({"zebra"}), held_out_relations=frozenset({"between"})
    )
    assert policy.split_for("cat+dog", objects=["cat", "dog"], relations=["left_of"]) == "train"
    assert policy.split_for("cat+zebra", objects=["cat", "zebra"], relations=["left_of"]) == "test"
    assert policy.split_for("cat+dog", objects=["cat", "dog"], relations=["between"]) == "test"


def test_held_out_split_must_be_one_of_the_splits():
    with pytest.raises(PromptSpecError) as caught:
        SplitPolicy(held_out_objects=frozenset({"zebra"}), held_out_split="holdout")
    assert caught.value.field == "held_out.split"


def test_group_key_ignores_order_and_repeats():
    assert group_key_for(["dog", "cat", "dog"]) == "cat+dog"
