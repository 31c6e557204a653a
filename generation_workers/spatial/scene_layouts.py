"""Prompts with several relations, consistent by construction.

Each candidate starts from a random layout: every object gets an x, a y and a depth position
(x positions are shared small integers when ``centered_on`` is allowed, so that centred pairs
exist). A relation is only placed on objects where it holds in that layout (``left_of`` from
the object further left, ``between`` on the middle one, ``centered_on`` on equal x); contact
is decided per pair and each pair carries at most one binary relation (each triple at most one
``between``); ``inside`` uses each object at most once. Every relation set drawn this way
satisfies the semantics in ``consistency.py``. Objects are distinct vocabulary names, each
mentioned by some relation, numbered by first mention.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from .builder_spec import BuildSpec
from .candidates import AttributeDraws, Candidate
from .errors import PromptSpecError
from .perturbations import LeanRelation
from .relations import RELATIONS
from .templates import ObjectTuple
from .tier_spec import MAX_SCENE_RELATIONS, TierSpec

_ORIENTATION: dict[str, tuple[int, int]] = {  # relation -> (axis, sign): subject lower/higher
    "left_of": (0, -1),
    "right_of": (0, 1),
    "above": (1, 1),
    "on_top_of": (1, 1),
    "below": (1, -1),
    "under": (1, -1),
    "in_front_of": (2, -1),
    "behind": (2, 1),
}
_Coordinates = tuple[list[Any], list[float], list[float]]


def min_objects(count: int, relations: tuple[str, ...]) -> int:
    """The fewest objects that can carry ``count`` relations (one per pair, one per triple)."""
    binary = any(RELATIONS[r].arity == 2 for r in relations)
    ternary = "between" in relations
    objects = 2 if binary else 3
    while True:
        capacity = (objects * (objects - 1) // 2 if binary else 0) + (
            objects * (objects - 1) * (objects - 2) // 6 if ternary else 0
        )
        if capacity >= count:
            return objects
        objects += 1


def layout_candidates(
    build: BuildSpec,
    tier: TierSpec,
    draws: AttributeDraws,
    excluded: frozenset[tuple[int, int]],
) -> Iterator[Candidate]:
    """Endless candidates for a multi-relation tier, deterministic in the seed."""
    rng = random.Random(f"{build.seed}:{tier.name}")
    fewest = [min_objects(count, build.relations) for count in range(MAX_SCENE_RELATIONS + 1)]
    span = tier.max_relations - tier.min_relations + 1
    failures = 0
    while True:
        count = tier.min_relations + int(rng.random() * span)
        layout = _layout(build, count, fewest[count], rng, draws, excluded)
        if layout is None:
            failures += 1
            if failures > 1_000:
                raise PromptSpecError(
                    f"tiers.{tier.name}",
                    count,
                    f"cannot place {count} consistent relations from "
                    f"{', '.join(build.relations)} among {len(build.vocabulary)} objects",
                )
            continue
        failures = 0
        scene = tier.scenes[int(rng.random() * len(tier.scenes))] if tier.scenes else None
        yield layout[0], layout[1], scene, build.scene_template


def _layout(
    build: BuildSpec,
    count: int,
    fewest: int,
    rng: random.Random,
    draws: AttributeDraws,
    excluded: frozenset[tuple[int, int]],
) -> tuple[list[ObjectTuple], list[LeanRelation]] | None:
    rand = rng.random
    allowed = build.relations
    n = len(build.vocabulary)
    size = fewest + int(rand() * (max(fewest, min(count + 1, n)) - fewest + 1))
    names = rng.sample(range(n), size)
    if "centered_on" in allowed:  # shared x positions make centred pairs possible
        x: list[Any] = [int(rand() * size) for _ in range(size)]
    else:
        x = [rand() for _ in range(size)]
    coordinates = (x, [rand() for _ in range(size)], [rand() for _ in range(size)])
    unused = list(range(size))  # positions already hold names in random order
    used: set[Any] = set()  # (low, high) pairs with a binary relation, triples with between
    contained: set[int] = set()
    relations: list[LeanRelation] = []
    for _step in range(count):
        for _attempt in range(30):
            relation = allowed[int(rand() * len(allowed))]
            first = unused[-1] if unused else int(rand() * size)
            second = int(rand() * size)
            if second == first:
                continue
            picked = [first, second]
            if relation == "between":
                third = int(rand() * size)
                if third == first or third == second:
                    continue
                picked.append(third)
                key: Any = frozenset(picked)
            else:
                key = (first, second) if first < second else (second, first)
            if key in used:
                continue
            if excluded and any(
                (min(names[p], names[q]), max(names[p], names[q])) in excluded
                for p, q in itertools.combinations(picked, 2)
            ):
                continue
            placed = _place(relation, picked, coordinates, rng, contained)
            if placed is None:
                continue
            used.add(key)
            if relation == "inside":
                contained.update(picked)
            relations.append(placed)
            if unused:
                unused = [p for p in unused if p not in picked]
            break
        else:
            return None
    return _numbered(names, relations, rng, draws)


def _place(
    relation: str,
    picked: list[int],
    coordinates: _Coordinates,
    rng: random.Random,
    contained: set[int],
) -> LeanRelation | None:
    """The relation oriented so that it holds in the layout, or None if it cannot."""
    if relation == "between":
        x = coordinates[0]
        if len({x[p] for p in picked}) < 3:
            return None
        first, middle, last = sorted(picked, key=x.__getitem__)
        ends = (first, last) if rng.random() < 0.5 else (last, first)
        return (middle, relation, ends)
    a, b = picked
    orientation = _ORIENTATION.get(relation)
    if orientation is not None:
        values = coordinates[orientation[0]]
        if values[a] == values[b]:
            return None
        lower, higher = (a, b) if values[a] < values[b] else (b, a)
        return (lower, relation, (higher,)) if orientation[1] < 0 else (higher, relation, (lower,))
    if relation == "centered_on" and coordinates[0][a] != coordinates[0][b]:
        return None
    if relation == "inside" and (a in contained or b in contained):
        return None
    return (a, relation, (b,)) if rng.random() < 0.5 else (b, relation, (a,))


def _numbered(
    names: list[int], relations: list[LeanRelation], rng: random.Random, draws: AttributeDraws
) -> tuple[list[ObjectTuple], list[LeanRelation]]:
    """Objects renumbered by first mention, with their attributes and counts drawn."""
    order: dict[int, int] = {}
    for subject, _relation, references in relations:
        order.setdefault(subject, len(order))
        for reference in references:
            order.setdefault(reference, len(order))
    renumbered = [(order[s], r, tuple(order[ref] for ref in refs)) for s, r, refs in relations]
    objects = [draws.object(names[old], rng.getrandbits(64)) for old in order]
    return objects, renumbered
