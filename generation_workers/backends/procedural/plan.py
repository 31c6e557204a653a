"""What a layout must satisfy: constraints from the relations, and the orders they imply.

A plan turns the spec's relations into constraints (relation i replaced by a stand-in that breaks
it when a violation is asked for), and derives what does not depend on positions: the depth plane
of every object, the draw order, the objects that move together, and contradictions. Orders along
x, y and depth are graphs; a cycle in one is a contradiction, reported with the relations on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .check import GENEVAL_THRESHOLD, relation_holds
from .geometry import Box
from .orders import Components, Edge, cycle_find, draw_order, path_find
from .spec import RelationSpec, SceneSpec

# Relation -> stand-ins that make it false, most telling first ("flip the direction").
SUBSTITUTES: dict[str, tuple[str, ...]] = {
    "left_of": ("right_of", "above", "below"),
    "right_of": ("left_of", "above", "below"),
    "above": ("below", "left_of", "right_of"),
    "below": ("above", "left_of", "right_of"),
    "in_front_of": ("behind", "_far"),
    "behind": ("in_front_of", "_far"),
    "on_top_of": ("under", "_far"),
    "under": ("on_top_of", "_far"),
    "inside": ("next_to", "_far"),
    "next_to": ("_far",),
    "near": ("_far",),
    "between": ("_outside",),
    "centered_on": ("_off_centre_on", "next_to", "_far"),
    "aligned_with_edge_of": ("_unaligned", "next_to", "_far"),
    "against": ("next_to", "_far"),
}
# Solver margins (keep, break): a relation it keeps must pass GenEval's rule at `keep`, one it
# breaks must fail it even at `break`, so that the checker's 0.5 sees a clear answer. Chains of
# positional relations can need the narrow margins: 0.6 allows only ~37 degrees off each axis.
MARGINS: tuple[tuple[float, float], ...] = (
    (GENEVAL_THRESHOLD + 0.1, GENEVAL_THRESHOLD - 0.1),
    (GENEVAL_THRESHOLD + 0.02, GENEVAL_THRESHOLD - 0.02),
)

X_ORDER = {"left_of": False, "right_of": True}  # relation -> edge reversed
Y_ORDER = {
    "above": False,
    "below": True,
    "on_top_of": False,
    "under": True,
    "centered_on": False,
    "_off_centre_on": False,
}
DEPTH_ORDER = {"in_front_of": False, "behind": True}  # edge from the nearer to the farther
DRAWN_AFTER = {"inside": False, "centered_on": False}  # edge: object drawn before subject
SAME_PLANE = frozenset({"on_top_of", "under", "against", "inside", "centered_on", "_off_centre_on"})
RIGID = SAME_PLANE | {"aligned_with_edge_of", "next_to"}
OVERLAPPING = frozenset({"in_front_of", "behind", "inside", "centered_on"})
# What a relation says about its two objects either way round, and which sayings exclude each
# other: two relations of one pair with excluding facts cannot both hold.
FACTS: dict[str, frozenset[str]] = {
    "next_to": frozenset({"side by side", "close"}),
    "against": frozenset({"side by side", "touching"}),
    "on_top_of": frozenset({"stacked", "touching"}),
    "under": frozenset({"stacked", "touching"}),
    "_off_centre_on": frozenset({"stacked", "touching"}),
    "in_front_of": frozenset({"overlapping"}),
    "behind": frozenset({"overlapping"}),
    "inside": frozenset({"overlapping"}),
    "centered_on": frozenset({"centred", "touching"}),
    "near": frozenset({"close"}),
    "_far": frozenset({"far apart"}),
}
EXCLUDING: tuple[tuple[str, str], ...] = (
    ("side by side", "stacked"),
    ("side by side", "overlapping"),
    ("side by side", "centred"),
    ("stacked", "overlapping"),
    ("far apart", "close"),
    ("far apart", "touching"),
    ("far apart", "overlapping"),
)


class LayoutError(ValueError):
    """The relations cannot all hold (contradictory, or no layout found); names the relations."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """Make `relation` hold; when `breaks` is set, that (original) relation must also fail."""

    relation: RelationSpec
    effective: str
    breaks: str | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return (self.relation.subject, *self.relation.objects)

    def holds(
        self,
        boxes: Mapping[str, Box],
        depth: Mapping[str, int],
        order: Mapping[str, int],
        *,
        margins: tuple[float, float],
    ) -> bool:
        subject, objects = self.relation.subject, self.relation.objects
        if not relation_holds(
            self.effective,
            subject,
            objects,
            boxes=boxes,
            depth=depth,
            order=order,
            threshold=margins[0],
        ):
            return False
        return self.breaks is None or not relation_holds(
            self.breaks,
            subject,
            objects,
            boxes=boxes,
            depth=depth,
            order=order,
            threshold=margins[1],
        )


@dataclass(frozen=True, slots=True)
class Plan:
    constraints: tuple[Constraint, ...]
    required: frozenset[int]  # positions in `constraints` that must hold; the rest are wishes
    depth: dict[str, int]  # 0: the front plane
    draw_after: tuple[tuple[str, str], ...]  # (drawn first, drawn later)
    order: dict[str, int]  # draw rank before positions are known
    clusters: dict[str, tuple[str, ...]]  # objects tied by contact, moved together
    may_overlap: frozenset[frozenset[str]]


def _contradiction(relations: list[RelationSpec], what: str) -> LayoutError:
    listed = ", ".join(r.describe() for r in sorted(set(relations), key=lambda r: r.index))
    return LayoutError(f"contradictory relations {listed}: {what}")


def _edges(constraints: Iterable[Constraint], table: Mapping[str, bool]) -> list[Edge]:
    edges = []
    for constraint in constraints:
        if constraint.effective in table:
            subject, other = constraint.relation.subject, constraint.relation.objects[0]
            tail, head = (other, subject) if table[constraint.effective] else (subject, other)
            edges.append((tail, head, constraint.relation))
    return edges


def _pair_conflict(constraints: list[Constraint]) -> LayoutError | None:
    """Two relations of the same two objects that say excluding things, if any."""
    by_pair: dict[frozenset[str], list[Constraint]] = {}
    for constraint in constraints:
        if len(constraint.members) == 2:
            by_pair.setdefault(frozenset(constraint.members), []).append(constraint)
    for group in by_pair.values():
        for k, first in enumerate(group):
            for second in group[k + 1 :]:
                facts = FACTS.get(first.effective, frozenset())
                others = FACTS.get(second.effective, frozenset())
                for one, other in EXCLUDING:
                    if (one in facts and other in others) or (other in facts and one in others):
                        said = sorted((one, other))
                        return _contradiction(
                            [first.relation, second.relation],
                            f"two objects cannot be both {said[0]} and {said[1]}",
                        )
    return None


def _depth_planes(ids: list[str], constraints: list[Constraint]) -> dict[str, int]:
    planes = Components(ids)
    contacts: list[Edge] = []
    for constraint in constraints:
        if constraint.effective in SAME_PLANE:
            a, b = constraint.members[:2]
            planes.join(a, b)
            contacts += [(a, b, constraint.relation), (b, a, constraint.relation)]
    edges = []
    for near, far, relation in _edges(constraints, DEPTH_ORDER):
        if planes.find(near) == planes.find(far):
            touching = path_find(contacts, near, far)
            raise _contradiction([relation, *touching], "objects in contact share a depth plane")
        edges.append((planes.find(near), planes.find(far), relation))
    roots = sorted({planes.find(node) for node in ids})
    cycle = cycle_find(roots, edges)
    if cycle:
        raise _contradiction(cycle, "a cycle in front/behind order")
    level = dict.fromkeys(roots, 0)
    for _ in roots:  # longest path; the graph is acyclic, so len(roots) rounds settle it
        for near, far, _relation in edges:
            level[far] = max(level[far], level[near] + 1)
    return {node: level[planes.find(node)] for node in ids}


def plan_build(scene: SceneSpec, *, violate: int | None, substitute: str | None) -> Plan:
    """Constraints for the scene; relation `violate` replaced by `substitute`, which breaks it.

    Raises LayoutError when the constraints contradict each other: two about one pair of
    objects, or a cycle along x, y, depth or the draw order.
    """
    ids = [o.id for o in scene.objects]
    constraints = []
    for relation in scene.relations:
        if relation.index == violate:
            assert substitute is not None
            constraints.append(Constraint(relation, substitute, breaks=relation.relation))
        else:
            constraints.append(Constraint(relation, relation.relation))
    conflict = _pair_conflict(constraints)
    if conflict is not None:
        raise conflict
    broken = next((c for c in constraints if c.breaks is not None), None)
    for axis, table in (("x", X_ORDER), ("y", Y_ORDER)):
        edges = _edges(constraints, table)
        cycle = cycle_find(ids, edges)
        if cycle:
            raise _contradiction(cycle, f"a cycle in the order along the {axis} axis")
        if broken is not None and broken.relation.relation in table:
            # The broken relation must not follow from the kept ones along its own axis.
            original = Constraint(broken.relation, broken.relation.relation)
            tail, head, _ = _edges([original], table)[0]
            kept = [edge for edge in edges if edge[2] != broken.relation]
            implied = path_find(kept, tail, head)
            if implied:
                raise _contradiction(
                    [broken.relation, *implied], f"the others imply {broken.relation.describe()}"
                )
    depth = _depth_planes(ids, constraints)
    after_edges = _edges(constraints, DRAWN_AFTER)
    after_edges = [(later, first, r) for first, later, r in after_edges]  # object before subject
    for near, far, relation in _edges(constraints, DEPTH_ORDER):
        after_edges.append((far, near, relation))
    cycle = cycle_find(ids, after_edges)
    if cycle:
        raise _contradiction(cycle, "no draw order puts each object over the ones it covers")
    after = tuple((first, later) for first, later, _ in after_edges)
    order = {node: i for i, node in enumerate(draw_order(ids, depth=depth, after=after))}
    rigid = Components(ids)
    for constraint in constraints:
        if constraint.effective in RIGID:
            rigid.join(constraint.relation.subject, constraint.relation.objects[0])
    members: dict[str, list[str]] = {}
    for node in ids:
        members.setdefault(rigid.find(node), []).append(node)
    # Tuples in spec order, not sets: set order changes with PYTHONHASHSEED, and the solver's
    # sums over a cluster must come out the same in every process.
    clusters = {node: tuple(members[rigid.find(node)]) for node in ids}
    may_overlap = frozenset(
        frozenset(c.members[:2]) for c in constraints if c.effective in OVERLAPPING
    )
    return Plan(
        constraints=tuple(constraints),
        required=frozenset(range(len(constraints))),
        depth=depth,
        draw_after=after,
        order=order,
        clusters=clusters,
        may_overlap=may_overlap,
    )


def plan_best_effort(plan: Plan, *, violate: int) -> Plan:
    """The same plan where only the broken relation is required; the others become wishes."""
    required = frozenset(i for i, c in enumerate(plan.constraints) if c.relation.index == violate)
    return dataclasses.replace(plan, required=required)
