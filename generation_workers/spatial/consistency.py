"""Contradictions between spatial relations, decided from the relation semantics.

Each relation is translated into facts ("atoms") about the objects it names:

- order facts on four axes, ``pos(u) < pos(v)`` (strict) or ``pos(u) <= pos(v)``:
  x (``left_of``, ``right_of``, and ``centered_on`` as x-equality), y (``above``, ``below``,
  ``on_top_of``, ``under``), depth (``in_front_of``, ``behind``) and containment (``inside``);
- contact facts on an unordered pair: ``on_top_of``, ``under`` and ``against`` touch,
  ``above`` and ``below`` do not;
- apart facts (neither object inside the other): ``on_top_of``, ``under``, ``next_to``,
  ``against``;
- ``between(A, B, C)``: A lies strictly between B and C on the x axis.

A set of relations is contradictory when the facts cannot all hold: a cycle of order facts
with at least one strict fact (A left_of B, B left_of C, C left_of A), a pair that both touches
and does not touch, an apart pair linked by containment, a ``between`` whose subject is known to
be on one side of both ends, or two ``between`` facts over the same three objects with different
middles. ``near`` and ``aligned_with_edge_of`` constrain nothing, so they never conflict.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import PromptSpecError

if TYPE_CHECKING:
    from .structure import StructuredPrompt

RelationTuple = tuple[Hashable, str, Sequence[Hashable]]
"""(subject, relation id, reference objects): the form the checks run on."""

_Edge = tuple[Hashable, bool, int]  # (target node, strict, relation index)
_Adjacency = dict[Hashable, list[_Edge]]

# relation -> order facts (axis, first argument, second argument, strict); "s" is the subject,
# "o" the reference object; the fact reads pos(first) < pos(second) (<= when not strict).
_ORDER: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "left_of": (("x", "s", "o", True),),
    "right_of": (("x", "o", "s", True),),
    "above": (("y", "o", "s", True),),
    "below": (("y", "s", "o", True),),
    "on_top_of": (("y", "o", "s", True),),
    "under": (("y", "s", "o", True),),
    "in_front_of": (("depth", "s", "o", True),),
    "behind": (("depth", "o", "s", True),),
    "inside": (("containment", "s", "o", True),),
    "centered_on": (("x", "s", "o", False), ("x", "o", "s", False)),
}
_TOUCH: dict[str, bool] = {
    "above": False,
    "below": False,
    "on_top_of": True,
    "under": True,
    "against": True,
}
_APART: frozenset[str] = frozenset({"on_top_of", "under", "next_to", "against"})
_AXIS_NAMES: dict[str, str] = {
    "x": "horizontal",
    "y": "vertical",
    "depth": "depth",
    "containment": "containment",
}


_ALL_KINDS = frozenset({*_AXIS_NAMES, "touch", "apart", "between"})


def _kinds_of(relation_ids: Iterable[str]) -> frozenset[str]:
    """The fact kinds a contradiction through these relations can involve."""
    kinds: set[str] = set()
    for relation in relation_ids:
        axes = {axis for axis, *_ in _ORDER.get(relation, ())}
        kinds.update(axes)
        if relation == "between" or "x" in axes:
            kinds.update(("x", "between"))
        if relation in _TOUCH:
            kinds.add("touch")
        if relation in _APART or relation == "inside":
            kinds.update(("apart", "containment"))
    return frozenset(kinds)


class _RelationLike(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def relation(self) -> str: ...
    @property
    def objects(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Conflict:
    """Relations (by index) that cannot all hold, and why."""

    relation_indices: tuple[int, ...]
    reason: str
    descriptions: tuple[str, ...] = ()

    def message(self) -> str:
        parts = [
            f"relations[{index}]" + (f" ({text})" if text else "")
            for index, text in zip(
                self.relation_indices,
                self.descriptions or ("",) * len(self.relation_indices),
                strict=True,
            )
        ]
        listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
        return f"{listed} contradict: {self.reason}"


def _path(
    adjacency: _Adjacency, source: Hashable, target: Hashable, need_strict: bool
) -> list[int] | None:
    """Relation indices along a shortest path source -> target (with a strict edge if asked)."""
    if source == target and not need_strict:
        return []
    start = (source, False)
    parents: dict[tuple[Hashable, bool], tuple[tuple[Hashable, bool], int] | None] = {start: None}
    queue: deque[tuple[Hashable, bool]] = deque([start])
    while queue:
        state = queue.popleft()
        node, strict_seen = state
        for neighbour, strict, index in adjacency.get(node, ()):
            next_state = (neighbour, strict_seen or strict)
            if next_state in parents:
                continue
            parents[next_state] = (state, index)
            if neighbour == target and (next_state[1] or not need_strict):
                indices: list[int] = []
                step: tuple[Hashable, bool] | None = next_state
                while step is not None and parents[step] is not None:
                    previous, edge_index = parents[step]  # type: ignore[misc]
                    indices.append(edge_index)
                    step = previous
                return indices[::-1]
            queue.append(next_state)
    return None


def find_conflicts(
    relations: Sequence[RelationTuple],
    *,
    focus: Collection[int] | None = None,
    first_only: bool = False,
) -> list[tuple[tuple[int, ...], str]]:
    """(sorted relation indices, reason) for each contradiction among ``relations``.

    With ``focus`` only contradictions involving one of those indices are looked for (cheaper
    when the rest is known to be consistent); ``first_only`` stops at the first one.
    """
    kinds = _ALL_KINDS if focus is None else _kinds_of(relations[i][1] for i in focus)
    adjacency: dict[str, _Adjacency] = {axis: {} for axis in _AXIS_NAMES}
    edges: list[tuple[str, Hashable, Hashable, bool, int]] = []
    touch: dict[frozenset[Hashable], list[tuple[bool, int]]] = {}
    apart: list[tuple[Hashable, Hashable, int]] = []
    betweens: list[tuple[Hashable, Hashable, Hashable, int]] = []
    for index, (subject, relation, objects) in enumerate(relations):
        if relation == "between":
            if "between" in kinds:
                betweens.append((subject, objects[0], objects[1], index))
            continue
        other = objects[0]
        for axis, first, _second, strict in _ORDER.get(relation, ()):
            if axis in kinds:
                u, v = (subject, other) if first == "s" else (other, subject)
                adjacency[axis].setdefault(u, []).append((v, strict, index))
                edges.append((axis, u, v, strict, index))
        if relation in _TOUCH and "touch" in kinds:
            touch.setdefault(frozenset((subject, other)), []).append((_TOUCH[relation], index))
        if relation in _APART and "apart" in kinds:
            apart.append((subject, other, index))

    found: dict[tuple[int, ...], str] = {}
    wanted = None if focus is None else frozenset(focus)

    def record(indices: Collection[int], reason: str) -> bool:
        key = tuple(sorted(set(indices)))
        if wanted is not None and wanted.isdisjoint(key):
            return False
        found.setdefault(key, reason)
        return first_only

    for axis, u, v, strict, index in edges:
        if wanted is not None and index not in wanted:
            continue
        path = _path(adjacency[axis], v, u, need_strict=not strict)
        if path is not None and record((index, *path), f"{_AXIS_NAMES[axis]} order cycle"):
            return list(found.items())
    for items in touch.values():
        touching = [index for value, index in items if value]
        apart_only = [index for value, index in items if not value]
        for i in touching:
            for j in apart_only:
                if record((i, j), "touching and not touching"):
                    return list(found.items())
    containment = adjacency["containment"]
    for a, b, index in apart:
        for source, target in ((a, b), (b, a)):
            path = _path(containment, source, target, need_strict=False)
            if path is not None and record((index, *path), "one object is inside the other"):
                return list(found.items())
    horizontal = adjacency["x"]
    for middle, end1, end2, index in betweens:
        for side in ("left", "right"):
            if side == "left":
                path1 = _path(horizontal, middle, end1, need_strict=False)
                path2 = _path(horizontal, middle, end2, need_strict=False)
            else:
                path1 = _path(horizontal, end1, middle, need_strict=False)
                path2 = _path(horizontal, end2, middle, need_strict=False)
            if path1 is not None and path2 is not None:
                reason = f"the subject of 'between' is {side} of both ends"
                if record((index, *path1, *path2), reason):
                    return list(found.items())
        ends1 = _path(horizontal, end1, end2, need_strict=False)
        ends2 = _path(horizontal, end2, end1, need_strict=False)
        if ends1 is not None and ends2 is not None:
            if record((index, *ends1, *ends2), "the ends of 'between' are level"):
                return list(found.items())
    for position, (middle, end1, end2, index) in enumerate(betweens):
        for other_middle, other1, other2, other_index in betweens[position + 1 :]:
            same_three = {middle, end1, end2} == {other_middle, other1, other2}
            if same_three and middle != other_middle:
                if record((index, other_index), "two different objects in the middle"):
                    return list(found.items())
    return list(found.items())


def _as_tuple(relation: _RelationLike | RelationTuple) -> RelationTuple:
    if isinstance(relation, tuple):
        return relation
    return (relation.subject, relation.relation, tuple(relation.objects))


def relations_contradict(
    a: _RelationLike | RelationTuple, b: _RelationLike | RelationTuple
) -> bool:
    """True when the two relations cannot both hold ("A left_of B" vs "A right_of B")."""
    return bool(find_conflicts([_as_tuple(a), _as_tuple(b)], first_only=True))


def prompt_relation_tuples(prompt: StructuredPrompt) -> list[RelationTuple]:
    return [(r.subject, r.relation, r.objects) for r in prompt.relations]


def check_consistency(prompt: StructuredPrompt) -> list[Conflict]:
    """Every contradiction in the prompt's relations, naming them by index and in words."""
    return [
        Conflict(indices, reason, tuple(prompt.describe_relation(index) for index in indices))
        for indices, reason in find_conflicts(prompt_relation_tuples(prompt))
    ]


def contradicts(original: StructuredPrompt, perturbed: StructuredPrompt) -> bool:
    """True when ``perturbed`` states something the consistent ``original`` rules out.

    Both prompts must describe the same objects under the same ids (perturbations change
    relations only). The proof: the original is consistent and the union of both relation
    sets is not, so no scene can satisfy both prompts.
    """
    if _object_keys(original) != _object_keys(perturbed):
        raise PromptSpecError(
            "objects",
            [o.id for o in perturbed.objects],
            "the perturbed prompt must keep the objects",
        )
    original_relations = prompt_relation_tuples(original)
    if find_conflicts(original_relations, first_only=True):
        return False
    union = original_relations + prompt_relation_tuples(perturbed)
    return bool(find_conflicts(union, first_only=True))


def _object_keys(prompt: StructuredPrompt) -> dict[str, Any]:
    return {o.id: (o.name, o.count, o.attributes) for o in prompt.objects}
