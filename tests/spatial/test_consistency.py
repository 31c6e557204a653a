import pytest

from generation_workers.spatial import (
    PromptSpecError,
    StructuredPrompt,
    check_consistency,
)


def _prompt(*relations, names=("cat", "dog", "cow", "pig")):
    objects = [{"id": f"o{i + 1}", "name": name} for i, name in enumerate(names)]
    used = {ref for s, _, refs in relations for ref in (s, *refs)}
    return StructuredPrompt.from_dict(
        {
            "objects": [o for o in objects if o["id"] in used],
            "relations": [
                {"subject": s, "relation": r, "objects": list(refs)} for s, r, refs in relations
            ],
        }
    )


def test_a_left_of_b_and_b_left_of_a_is_a_horizontal_cycle():
    conflicts = check_consistency(_prompt(("o1", "left_of", ["o2"]), ("o2", "left_of", ["o1"])))
    assert len(conflicts) == 1
    assert conflicts[0].relation_indices == (0, 1)
    assert conflicts[0].reason == "horizontal order cycle"
    assert conflicts[0].descriptions == ("cat left_of dog", "dog left_of cat")


def test_a_three_object_cycle_along_one_axis_is_found():
    conflicts = check_consistency(
        _prompt(("o1", "above", ["o2"]), ("o2", "above", ["o3"]), ("o3", "above", ["o1"]))
    )
    assert [(c.relation_indices, c.reason) for c in conflicts] == [
        ((0, 1, 2), "vertical order cycle")
    ]


def test_a_left_of_b_and_a_right_of_b_contradict():
    conflicts = check_consistency(_prompt(("o1", "left_of", ["o2"]), ("o1", "right_of", ["o2"])))
    assert [c.relation_indices for c in conflicts] == [(0, 1)]


def test_restating_a_relation_through_its_inverse_is_consistent():
    prompt = _prompt(
        ("o1", "left_of", ["o2"]),
        ("o2", "right_of", ["o1"]),
        ("o3", "on_top_of", ["o1"]),
        ("o1", "under", ["o3"]),
    )
    assert check_consistency(prompt) == []


def test_a_chain_in_one_direction_is_consistent():
    prompt = _prompt(
        ("o1", "left_of", ["o2"]), ("o2", "left_of", ["o3"]), ("o1", "left_of", ["o3"])
    )
    assert check_consistency(prompt) == []


def test_a_cycle_mixing_inverses_is_found():
    prompt = _prompt(
        ("o1", "left_of", ["o2"]), ("o3", "right_of", ["o2"]), ("o1", "right_of", ["o3"])
    )
    assert [(c.relation_indices, c.reason) for c in check_consistency(prompt)] == [
        ((0, 1, 2), "horizontal order cycle")
    ]


def test_on_top_of_and_above_share_the_vertical_order():
    prompt = _prompt(("o1", "on_top_of", ["o2"]), ("o2", "above", ["o3"]), ("o3", "above", ["o1"]))
    assert [c.reason for c in check_consistency(prompt)] == ["vertical order cycle"]


def test_touching_and_not_touching_the_same_object_contradict():
    prompt = _prompt(("o1", "above", ["o2"]), ("o2", "under", ["o1"]))
    assert [(c.relation_indices, c.reason) for c in check_consistency(prompt)] == [
        ((0, 1), "touching and not touching")
    ]


def test_containment_cycles_and_apart_pairs_conflict():
    cycle = _prompt(("o1", "inside", ["o2"]), ("o2", "inside", ["o1"]))
    assert [c.reason for c in check_consistency(cycle)] == ["containment order cycle"]
    apart = _prompt(("o1", "inside", ["o2"]), ("o2", "inside", ["o3"]), ("o1", "next_to", ["o3"]))
    assert [(c.relation_indices, c.reason) for c in check_consistency(apart)] == [
        ((0, 1, 2), "one object is inside the other")
    ]


def test_centered_on_is_horizontal_equality():
    assert (
        check_consistency(_prompt(("o1", "centered_on", ["o2"]), ("o2", "centered_on", ["o1"])))
        == []
    )
    conflicts = check_consistency(_prompt(("o1", "centered_on", ["o2"]), ("o1", "left_of", ["o2"])))
    assert [c.relation_indices for c in conflicts] == [(0, 1)]


def test_between_needs_its_subject_between_the_ends():
    fine = _prompt(("o1", "between", ["o2", "o3"]), ("o2", "left_of", ["o1"]))
    assert check_consistency(fine) == []
    outside = _prompt(
        ("o1", "between", ["o2", "o3"]), ("o1", "left_of", ["o2"]), ("o1", "left_of", ["o3"])
    )
    assert [(c.relation_indices, c.reason) for c in check_consistency(outside)] == [
        ((0, 1, 2), "the subject of 'between' is left of both ends")
    ]
    two_middles = _prompt(("o1", "between", ["o2", "o3"]), ("o2", "between", ["o1", "o3"]))
    assert [c.reason for c in check_consistency(two_middles)] == [
        "two different objects in the middle"
    ]


def test_near_and_aligned_never_conflict():
    prompt = _prompt(
        ("o1", "near", ["o2"]),
        ("o2", "near", ["o1"]),
        ("o1", "aligned_with_edge_of", ["o2"]),
        ("o1", "left_of", ["o2"]),
    )
    assert check_consistency(prompt) == []


def test_validate_rejects_a_contradictory_prompt_naming_the_relations():
    prompt = _prompt(("o1", "left_of", ["o2"]), ("o3", "near", ["o1"]), ("o2", "left_of", ["o1"]))
    with pytest.raises(PromptSpecError) as caught:
        prompt.validate()
    assert caught.value.field == "relations"
    assert caught.value.value == [0, 2]
    assert caught.value.message == (
        "relations[0] (cat left_of dog) and relations[2] (dog left_of cat) contradict: "
        "horizontal order cycle"
    )
