"""Property tests over random consistent specs of left_of / right_of / above / below."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation_workers.backends.procedural import check_layout, layout_scene

DIRECTIONS = ("left_of", "right_of", "above", "below")
NAMES = ("cat", "dog", "tv", "computer mouse", "cup", "vase", "car", "book")
EXAMPLES = int(os.environ.get("PROCEDURAL_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _objects(draw: st.DrawFn, n: int) -> list[dict]:
    return [
        {
            "id": f"o{i}",
            "name": draw(st.sampled_from(NAMES)),
            "count": draw(st.sampled_from((1, 1, 2, 3))),
            "attributes": {"size": draw(st.sampled_from(("small", "medium", "large")))},
        }
        for i in range(n)
    ]


def _oriented(relation: str, a: int, b: int, x_rank: list[int], y_rank: list[int]) -> dict:
    """`relation` between objects a and b, subject and object swapped to agree with the ranks
    (rank 0 is leftmost / topmost)."""
    rank = x_rank if relation in ("left_of", "right_of") else y_rank
    a_first = rank[a] < rank[b]
    if relation in ("right_of", "below"):
        a_first = not a_first
    subject, other = (a, b) if a_first else (b, a)
    return {"subject": f"o{subject}", "relation": relation, "objects": [f"o{other}"]}


@st.composite
def consistent_specs(draw: st.DrawFn) -> dict:
    """2-5 objects with hidden x and y orders; 1-4 relations, each agreeing with the orders."""
    n = draw(st.integers(2, 5))
    x_rank = draw(st.permutations(range(n)))
    y_rank = draw(st.permutations(range(n)))
    relations = []
    for _ in range(draw(st.integers(1, 4))):
        a, b = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        relations.append(_oriented(draw(st.sampled_from(DIRECTIONS)), a, b, x_rank, y_rank))
    return {"objects": _objects(draw, n), "relations": relations, "scene": None}


@st.composite
def tree_specs(draw: st.DrawFn) -> dict:
    """Like consistent_specs, but the relations link the objects as a tree: no relation follows
    from the others, so any one of them can be broken while the rest hold."""
    n = draw(st.integers(2, 5))
    x_rank = draw(st.permutations(range(n)))
    y_rank = draw(st.permutations(range(n)))
    relations = []
    for child in range(1, 1 + draw(st.integers(1, min(4, n - 1)))):
        parent = draw(st.integers(0, child - 1))
        relation = draw(st.sampled_from(DIRECTIONS))
        relations.append(_oriented(relation, child, parent, x_rank, y_rank))
    return {"objects": _objects(draw, n), "relations": relations, "scene": "kitchen"}


@SETTINGS
@given(spec=consistent_specs(), seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 3))
def test_consistent_spec_has_every_relation_hold_and_a_violated_one_fail(
    spec: dict, seed: int, pick: int
) -> None:
    layout = layout_scene(spec, seed=seed, width=512, height=512)
    violate = pick % len(spec["relations"])
    broken = layout_scene(spec, seed=seed, width=512, height=512, violate=violate)

    assert check_layout(spec, layout) == dict.fromkeys(range(len(spec["relations"])), True)
    assert check_layout(spec, broken)[violate] is False


@SETTINGS
@given(spec=tree_specs(), seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 3))
def test_tree_spec_breaks_exactly_the_violated_relation(spec: dict, seed: int, pick: int) -> None:
    violate = pick % len(spec["relations"])

    layout = layout_scene(spec, seed=seed, width=512, height=512, violate=violate)

    expected = {i: i != violate for i in range(len(spec["relations"]))}
    assert check_layout(spec, layout) == expected
