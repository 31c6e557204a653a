"""check_layout and relation_holds read relations off boxes, depth planes and draw order."""

from __future__ import annotations

import pytest

from generation_workers.backends.procedural import Box, Layout, PlacedObject, check_layout
from generation_workers.backends.procedural.check import geneval_direction, relation_holds


def _placed(object_id: str, box: Box, *, depth: int = 0) -> PlacedObject:
    return PlacedObject(
        id=object_id,
        name=object_id,
        count=1,
        size="medium",
        shape="square",
        color=(0, 0, 0),
        depth=depth,
        box=box,
        instances=(box,),
    )


def _holds(relation: str, a: Box, b: Box, *, a_later: bool = True, a_depth: int = 0) -> bool:
    return relation_holds(
        relation,
        "a",
        ("b",),
        boxes={"a": a, "b": b},
        depth={"a": a_depth, "b": 0 if a_depth else 1},
        order={"a": 1 if a_later else 0, "b": 0 if a_later else 1},
    )


def test_geneval_direction_shrinks_the_offset_by_a_tenth_of_the_sizes() -> None:
    a = Box.around(100, 140, 50, 50)
    b = Box.around(70, 100, 50, 50)

    # offset (30, 40), |offset| 50, shrink 10 on each axis: (20, 30) / 50
    assert geneval_direction(a, b) == pytest.approx((0.4, 0.6))
    assert _holds("below", a, b) is True
    assert _holds("right_of", a, b) is False


def test_geneval_direction_is_zero_when_the_shrunk_offset_vanishes() -> None:
    a = Box.around(105, 100, 50, 50)
    b = Box.around(100, 100, 50, 50)

    assert geneval_direction(a, b) == (0.0, 0.0)
    assert [_holds(r, a, b) for r in ("left_of", "right_of", "above", "below")] == [False] * 4


def test_on_top_of_needs_contact_and_horizontal_overlap() -> None:
    table = Box(100, 200, 300, 260)

    assert _holds("on_top_of", Box(150, 150, 200, 200), table) is True
    assert _holds("on_top_of", Box(150, 140, 200, 190), table) is False  # floating
    assert _holds("on_top_of", Box(305, 150, 355, 200), table) is False  # beside it
    assert _holds("under", table, Box(150, 150, 200, 200)) is True


def test_inside_needs_containment_and_being_drawn_over_the_container() -> None:
    box = Box(100, 100, 300, 300)
    ball = Box(150, 150, 200, 200)

    assert _holds("inside", ball, box) is True
    assert _holds("inside", ball, box, a_later=False) is False
    assert _holds("inside", Box(250, 150, 350, 200), box) is False


def test_in_front_of_needs_overlap_a_nearer_plane_a_later_draw_and_a_lower_bottom() -> None:
    back = Box(100, 100, 200, 200)
    front = Box(150, 130, 260, 240)

    assert _holds("in_front_of", front, back, a_depth=0) is True
    assert _holds("in_front_of", front, back, a_depth=0, a_later=False) is False
    assert _holds("in_front_of", Box(150, 100, 260, 190), back, a_depth=0) is False  # higher
    assert _holds("in_front_of", Box(210, 130, 300, 240), back, a_depth=0) is False  # apart
    assert _holds("behind", back, front, a_depth=1, a_later=False) is True


def test_next_to_against_and_near_by_gaps_relative_to_size() -> None:
    b = Box(200, 100, 300, 200)

    assert _holds("against", Box(100, 120, 200, 200), b) is True
    assert _holds("next_to", Box(80, 120, 180, 200), b) is True  # gap 20 <= 0.35 * 100
    assert _holds("next_to", Box(50, 120, 150, 200), b) is False  # gap 50
    assert _holds("against", Box(80, 120, 180, 200), b) is False
    assert _holds("near", Box(50, 120, 150, 200), b) is True  # gap 50 <= 0.6 * 100
    assert _holds("near", Box(0, 120, 100, 200), b) is False  # gap 100


def test_between_on_either_axis_and_edges_aligned() -> None:
    left, right = Box(0, 0, 50, 50), Box(300, 0, 350, 50)

    held = relation_holds(
        "between",
        "a",
        ("b", "c"),
        boxes={"a": Box(150, 100, 200, 150), "b": left, "c": right},
        depth={},
        order={},
    )
    assert held is True
    assert _holds("aligned_with_edge_of", Box(0, 200, 40, 240), left) is True
    assert _holds("aligned_with_edge_of", Box(5, 200, 45, 240), left) is False


def test_check_layout_reads_the_layouts_boxes_not_the_spec() -> None:
    spec = {
        "objects": [
            {"id": "cat", "name": "cat", "count": 1, "attributes": {}},
            {"id": "dog", "name": "dog", "count": 1, "attributes": {}},
        ],
        "relations": [
            {"subject": "cat", "relation": "left_of", "objects": ["dog"]},
            {"subject": "cat", "relation": "above", "objects": ["dog"]},
        ],
        "scene": None,
    }
    layout = Layout(
        width=512,
        height=512,
        scene=None,
        seed=0,
        violated=None,
        objects=(
            _placed("cat", Box.around(100, 300, 60, 60)),
            _placed("dog", Box.around(400, 300, 60, 60)),
        ),
    )

    assert check_layout(spec, layout) == {0: True, 1: False}
