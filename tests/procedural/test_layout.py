"""layout_scene and check_layout: relations hold, break on request, and contradictions fail."""

from __future__ import annotations

import pytest

from generation_workers.backends.procedural import (
    RELATIONS,
    LayoutError,
    SpecError,
    check_layout,
    layout_scene,
)
from generation_workers.backends.procedural.check import relation_holds


def _spec(relation: str, *, counts: tuple[int, int, int] = (1, 1, 1)) -> dict:
    """A cat, a table and two mice; the relation ties the cat to the table (and the mice)."""
    objects = [
        {"id": "cat", "name": "cat", "count": counts[0], "attributes": {"color": "red"}},
        {"id": "table", "name": "table", "count": counts[1], "attributes": {"size": "large"}},
        {"id": "mice", "name": "computer mouse", "count": counts[2], "attributes": {}},
    ]
    objects_of = ["table", "mice"] if relation == "between" else ["table"]
    return {
        "objects": objects,
        "relations": [{"subject": "cat", "relation": relation, "objects": objects_of}],
        "scene": "kitchen",
    }


def _pair(relations: list[tuple[str, str, str]]) -> dict:
    return {
        "objects": [
            {"id": "o1", "name": "cat", "count": 1, "attributes": {}},
            {"id": "o2", "name": "dog", "count": 1, "attributes": {}},
            {"id": "o3", "name": "tv", "count": 1, "attributes": {}},
        ],
        "relations": [{"subject": s, "relation": r, "objects": [o]} for s, r, o in relations],
        "scene": None,
    }


@pytest.mark.parametrize("relation", RELATIONS)
def test_every_relation_holds_in_its_layout(relation: str) -> None:
    spec = _spec(relation)
    for seed in range(6):
        layout = layout_scene(spec, seed=seed, width=512, height=512)

        assert check_layout(spec, layout) == {0: True}, seed


@pytest.mark.parametrize("relation", RELATIONS)
def test_every_relation_fails_when_violated(relation: str) -> None:
    spec = _spec(relation)
    for seed in range(6):
        layout = layout_scene(spec, seed=seed, width=512, height=512, violate=0)

        assert check_layout(spec, layout) == {0: False}, seed
        assert layout.violated == 0


@pytest.mark.parametrize(
    ("relation", "flipped"),
    [("left_of", "right_of"), ("right_of", "left_of"), ("above", "below"), ("below", "above")],
)
def test_violating_a_direction_draws_the_opposite_direction(relation: str, flipped: str) -> None:
    layout = layout_scene(_spec(relation), seed=3, width=512, height=512, violate=0)

    held = relation_holds(
        flipped,
        "cat",
        ("table",),
        boxes=layout.boxes,
        depth=layout.depth,
        order=layout.order,
    )
    assert held is True


def test_violating_one_relation_keeps_the_others() -> None:
    spec = _pair([("o1", "left_of", "o2"), ("o3", "above", "o2"), ("o1", "near", "o3")])

    results = [
        check_layout(spec, layout_scene(spec, seed=7, width=512, height=512, violate=i))
        for i in range(3)
    ]

    assert results == [
        {0: False, 1: True, 2: True},
        {0: True, 1: False, 2: True},
        {0: True, 1: True, 2: False},
    ]


def test_same_seed_gives_the_same_layout_and_another_seed_a_different_one() -> None:
    spec = _spec("on_top_of", counts=(2, 1, 3))

    first = layout_scene(spec, seed=11, width=512, height=512)
    again = layout_scene(spec, seed=11, width=512, height=512)
    other = layout_scene(spec, seed=12, width=512, height=512)

    assert first == again
    assert first.boxes != other.boxes


def test_left_of_both_ways_raises_layout_error_naming_both_relations() -> None:
    spec = _pair([("o1", "left_of", "o2"), ("o2", "left_of", "o1")])

    with pytest.raises(LayoutError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == (
        "contradictory relations #0 (o1 left_of o2), #1 (o2 left_of o1): "
        "a cycle in the order along the x axis"
    )


def test_a_cycle_through_three_objects_raises_layout_error_naming_all_three() -> None:
    spec = _pair([("o1", "above", "o2"), ("o2", "above", "o3"), ("o3", "above", "o1")])

    with pytest.raises(LayoutError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == (
        "contradictory relations #0 (o1 above o2), #1 (o2 above o3), #2 (o3 above o1): "
        "a cycle in the order along the y axis"
    )


def test_in_front_and_behind_of_each_other_raises_layout_error() -> None:
    spec = _pair([("o1", "in_front_of", "o2"), ("o1", "behind", "o2")])

    with pytest.raises(LayoutError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == (
        "contradictory relations #0 (o1 in_front_of o2), #1 (o1 behind o2): "
        "a cycle in front/behind order"
    )


def test_in_front_of_between_objects_in_contact_raises_layout_error_naming_the_contacts() -> None:
    spec = _pair([("o1", "on_top_of", "o3"), ("o2", "against", "o3"), ("o1", "in_front_of", "o2")])

    with pytest.raises(LayoutError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == (
        "contradictory relations #0 (o1 on_top_of o3), #1 (o2 against o3), "
        "#2 (o1 in_front_of o2): objects in contact share a depth plane"
    )


def test_violating_a_relation_the_others_imply_still_breaks_it() -> None:
    spec = _pair([("o1", "left_of", "o2"), ("o2", "right_of", "o1")])

    layout = layout_scene(spec, seed=0, width=512, height=512, violate=0)

    assert check_layout(spec, layout) == {0: False, 1: False}


def test_a_group_holds_count_instances_inside_its_box() -> None:
    layout = layout_scene(_spec("left_of", counts=(5, 1, 2)), seed=1, width=512, height=512)

    cats = layout.object("cat")
    assert len(cats.instances) == 5
    assert len(layout.object("mice").instances) == 2
    assert len(layout.object("table").instances) == 1
    assert all(cats.box.contains(instance) for instance in cats.instances)
    assert min(i.x0 for i in cats.instances) == pytest.approx(cats.box.x0)
    assert max(i.y1 for i in cats.instances) == pytest.approx(cats.box.y1)


def test_every_box_lies_inside_the_canvas() -> None:
    spec = _pair([("o1", "left_of", "o2"), ("o2", "left_of", "o3"), ("o3", "below", "o1")])
    for seed in range(10):
        layout = layout_scene(spec, seed=seed, width=300, height=200)

        for box in layout.boxes.values():
            assert 0 <= box.x0 < box.x1 <= 300
            assert 0 <= box.y0 < box.y1 <= 200


def test_objects_behind_are_on_a_farther_plane_drawn_first_and_smaller() -> None:
    spec = _pair([("o1", "behind", "o2"), ("o2", "behind", "o3")])
    for placed in spec["objects"]:
        placed["name"] = "box"  # one name, one aspect: heights differ by depth alone

    layout = layout_scene(spec, seed=2, width=512, height=512)

    assert layout.depth == {"o1": 2, "o2": 1, "o3": 0}
    assert [o.id for o in layout.objects] == ["o1", "o2", "o3"]
    heights = [layout.object(i).box.height for i in ("o1", "o2", "o3")]
    assert heights[0] < heights[1] < heights[2]


def test_an_object_inside_a_larger_one_is_shrunk_and_drawn_over_it() -> None:
    spec = _spec("inside")
    spec["objects"][0]["attributes"]["size"] = "large"
    spec["objects"][1]["attributes"]["size"] = "small"

    layout = layout_scene(spec, seed=4, width=512, height=512)

    cat, table = layout.object("cat"), layout.object("table")
    assert table.box.contains(cat.box)
    assert cat.box.width <= 0.6 * table.box.width + 1e-9
    assert layout.order["cat"] > layout.order["table"]


def test_violate_out_of_range_raises_spec_error() -> None:
    with pytest.raises(SpecError) as raised:
        layout_scene(_spec("near"), seed=0, width=512, height=512, violate=1)

    assert str(raised.value) == "violate=1, but the spec has 1 relations"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["relations"][0].update(relation="beside"),
            "relations[0]: unknown relation 'beside'",
        ),
        (
            lambda s: s["relations"][0].update(objects=["sofa"]),
            "relations[0]: unknown object id 'sofa'",
        ),
        (
            lambda s: s["relations"][0].update(objects=["cat"]),
            "relations[0]: an object cannot be related to itself",
        ),
        (
            lambda s: s["objects"][0]["attributes"].update(color="sparkly"),
            "object 'cat': unknown color 'sparkly'",
        ),
        (
            lambda s: s["objects"][0]["attributes"].update(size="huge"),
            "object 'cat': size must be one of small, medium, large",
        ),
        (lambda s: s["objects"][0].update(count=0), "object 'cat': count must be an int in 1..12"),
        (lambda s: s["objects"][1].update(id="cat"), "object ids are not unique"),
    ],
)
def test_a_malformed_spec_raises_spec_error_saying_what_is_wrong(change, message: str) -> None:
    spec = _spec("near")
    change(spec)

    with pytest.raises(SpecError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == message


def test_between_takes_two_objects() -> None:
    spec = _spec("between")
    spec["relations"][0]["objects"] = ["table"]

    with pytest.raises(SpecError) as raised:
        layout_scene(spec, seed=0, width=512, height=512)

    assert str(raised.value) == "relations[0]: between takes 2 object(s)"
