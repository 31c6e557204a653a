"""Positions for boxes of known sizes such that a plan's constraints hold.

Three stages. Greedy construction: objects are placed one by one (the most constrained first),
each at the best of a few random candidates drawn from the samplers of its relations to objects
already placed. Relaxation: cyclic projections onto the positional constraints (left_of, above,
...), which are convex, so chains of them that random samples rarely satisfy converge. Then
min-conflicts repair: while a constraint fails, pick one at random and move one of its objects
(alone, or with the cluster of objects in contact with it) to the candidate that leaves the
fewest failing. Candidates are ranked by failing required constraints, then failing wishes, then
a penalty for unrelated objects overlapping each other and for a scene larger than the canvas.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .geometry import Box, union_box
from .placement import CONVERSE, DIRECTIONS, propose, propose_free
from .plan import Plan
from .positional import nudge, projection_step

CANDIDATES = 6  # per object and relation
REPAIR_STEPS = 60
ROUNDS = 3  # of relaxation then repair
RELAX_SWEEPS = 200
RELAX_OVERSHOOT = 0.02  # aim a little past the solver's margin
SPRAWL_WEIGHT = 2.0  # against the overlap penalty

Score = tuple[int, int, float]


@dataclass(frozen=True, slots=True)
class Solution:
    boxes: dict[str, Box]
    failing_required: int
    failing_wishes: int
    unmet: tuple[int, ...]  # spec indices of the relations whose constraints fail


class _Search:
    def __init__(
        self,
        plan: Plan,
        *,
        sizes: dict[str, tuple[float, float]],
        frame: tuple[float, float],
        rng: random.Random,
        margins: tuple[float, float],
    ) -> None:
        self.plan = plan
        self.margins = margins
        self.sizes = sizes
        self.frame = frame
        self.rng = rng
        self.boxes: dict[str, Box] = {}
        self.touching: dict[str, list[int]] = {node: [] for node in sizes}
        for i, constraint in enumerate(plan.constraints):
            for member in constraint.members:
                self.touching[member].append(i)
        self.status: list[bool | None] = [None] * len(plan.constraints)  # None: not all placed
        self.failing = [0, 0]  # required, wishes

    def _kind(self, index: int) -> int:
        return 0 if index in self.plan.required else 1

    def _overlap(self, boxes: dict[str, Box], nodes: list[str]) -> float:
        """How much the nodes cover objects they have no relation allowing it (and each other),
        each overlap as a share of the smaller box."""
        total = 0.0
        for k, node in enumerate(nodes):
            box = boxes[node]
            for other, other_box in boxes.items():
                if other == node or other in nodes[:k]:
                    continue
                if frozenset((node, other)) in self.plan.may_overlap:
                    continue
                shared = box.intersection_area(other_box)
                if shared > 0:
                    total += shared / min(box.area, other_box.area)
        return total

    def _sprawl(self, boxes: dict[str, Box]) -> float:
        """How far the scene exceeds the frame, as a share of it (it will be scaled down)."""
        extent = union_box(list(boxes.values()))
        return max(0.0, extent.width / self.frame[0] - 1) + max(
            0.0, extent.height / self.frame[1] - 1
        )

    def _evaluate(self, moved: dict[str, Box]) -> tuple[Score, dict[int, bool]]:
        """The score the search would have after the move, and the constraints it changes."""
        trial = {**self.boxes, **moved}
        failing = list(self.failing)
        changed: dict[int, bool] = {}
        affected = {i for node in moved for i in self.touching[node]}
        for i in sorted(affected):
            constraint = self.plan.constraints[i]
            if not all(member in trial for member in constraint.members):
                continue
            holds = constraint.holds(trial, self.plan.depth, self.plan.order, margins=self.margins)
            before = self.status[i]
            if before is None:
                failing[self._kind(i)] += not holds
            elif before != holds:
                failing[self._kind(i)] += 1 if before else -1
            changed[i] = holds
        nodes = list(moved)
        placed = [node for node in nodes if node in self.boxes]
        # Overlap relative to now (only the moved objects' part changes), plus the sprawl.
        penalty = self._overlap(trial, nodes) - self._overlap(self.boxes, placed)
        penalty += SPRAWL_WEIGHT * self._sprawl(trial)
        return (failing[0], failing[1], penalty), changed

    def _best(self, candidates: list[dict[str, Box]]) -> tuple[dict[str, Box], dict[int, bool]]:
        best: tuple[Score, dict[str, Box], dict[int, bool]] | None = None
        for moved in candidates:
            score, changed = self._evaluate(moved)
            if best is None or score < best[0]:
                best = (score, moved, changed)
        assert best is not None
        return best[1], best[2]

    def _apply(self, moved: dict[str, Box], changed: dict[int, bool]) -> None:
        self.boxes.update(moved)
        for i, holds in changed.items():
            before = self.status[i]
            if before is None:
                self.failing[self._kind(i)] += not holds
            elif before != holds:
                self.failing[self._kind(i)] += 1 if before else -1
            self.status[i] = holds

    def _toward(self, node: str, index: int) -> tuple[str, ...]:
        """The node's other relations to the same single partner, seen from the node."""
        members = self.plan.constraints[index].members
        if len(members) != 2:
            return ()
        pair = set(members)
        toward = []
        for j in self.touching[node]:
            other = self.plan.constraints[j]
            if j == index or set(other.members) != pair:
                continue
            if other.relation.subject == node:
                toward.append(other.effective)
            elif other.effective in CONVERSE:
                toward.append(CONVERSE[other.effective])
        return tuple(toward)

    def _candidates_for(self, node: str, index: int) -> list[dict[str, Box]]:
        constraint = self.plan.constraints[index]
        role = constraint.members.index(node)
        toward = self._toward(node, index)
        found = []
        for _ in range(CANDIDATES):
            box = propose(
                constraint.effective,
                role,
                members=constraint.members,
                boxes=self.boxes,
                size=self.sizes[node],
                rng=self.rng,
                toward=toward,
            )
            if box is not None:
                found.append({node: box})
        return found

    def _ready(self, node: str) -> list[int]:
        """The node's constraints whose other members are all placed."""
        return [
            i
            for i in self.touching[node]
            if all(m == node or m in self.boxes for m in self.plan.constraints[i].members)
        ]

    def construct(self) -> None:
        unplaced = list(self.sizes)
        self.rng.shuffle(unplaced)
        unplaced.sort(key=lambda node: -len(self.touching[node]))
        while unplaced:
            node = max(unplaced, key=lambda n: len(self._ready(n)))
            unplaced.remove(node)
            candidates = [c for i in self._ready(node) for c in self._candidates_for(node, i)]
            if not candidates:
                candidates = [
                    {node: propose_free(frame=self.frame, size=self.sizes[node], rng=self.rng)}
                    for _ in range(CANDIDATES)
                ]
            self._apply(*self._best(candidates))

    def _refresh(self) -> None:
        self.failing = [0, 0]
        for i, constraint in enumerate(self.plan.constraints):
            holds = constraint.holds(
                self.boxes, self.plan.depth, self.plan.order, margins=self.margins
            )
            self.status[i] = holds
            self.failing[self._kind(i)] += not holds

    def relax(self, sweeps: int) -> None:
        """Cyclic subgradient projections onto the positional constraints.

        "A left_of B at score t" is t * |v| - v_along + shrink <= 0 for the centre offset v: a
        convex set, so stepping onto each violated one in turn converges when together they are
        feasible, and handles chains of relations that random samples rarely hit. The step is
        split between the two objects' clusters, which move rigidly (contacts stay)."""
        t = self.margins[0] + RELAX_OVERSHOOT
        items = [
            c
            for c in self.plan.constraints
            if c.effective in DIRECTIONS
            and self.plan.clusters[c.members[0]] != self.plan.clusters[c.members[1]]
        ]
        for _ in range(sweeps if items else 0):
            moved = False
            for constraint in items:
                a, b = constraint.members
                shift = projection_step(constraint.effective, self.boxes[a], self.boxes[b], t)
                if shift is None:
                    continue
                moved = True
                for node in self.plan.clusters[a]:
                    self.boxes[node] = self.boxes[node].moved(shift[0] / 2, shift[1] / 2)
                for node in self.plan.clusters[b]:
                    self.boxes[node] = self.boxes[node].moved(-shift[0] / 2, -shift[1] / 2)
            if not moved:
                break
        self._refresh()

    def snapshot(self) -> Solution:
        unmet = tuple(
            c.relation.index
            for c, holds in zip(self.plan.constraints, self.status, strict=True)
            if holds is False
        )
        return Solution(dict(self.boxes), self.failing[0], self.failing[1], unmet)

    def repair(self, steps: int) -> Solution:
        best = self.snapshot()
        for _ in range(steps):
            if self.failing == [0, 0]:
                break
            failing = [i for i, holds in enumerate(self.status) if holds is False]
            required = [i for i in failing if i in self.plan.required]
            index = self.rng.choice(required or failing)
            constraint = self.plan.constraints[index]
            candidates = []
            for role, node in enumerate(constraint.members):
                cluster = self.plan.clusters[node]
                whole = len(cluster) > 1 and not set(constraint.members) <= set(cluster)
                nudged = nudge(
                    constraint.effective,
                    role,
                    members=constraint.members,
                    boxes=self.boxes,
                    threshold=self.margins[0],
                    rng=self.rng,
                )
                for moved in [{node: box} for box in nudged] + self._candidates_for(node, index):
                    candidates.append(moved)
                    if whole:
                        dx = moved[node].x0 - self.boxes[node].x0
                        dy = moved[node].y0 - self.boxes[node].y0
                        candidates.append({m: self.boxes[m].moved(dx, dy) for m in cluster})
            if not candidates:
                continue
            self._apply(*self._best(candidates))
            if (self.failing[0], self.failing[1]) < (best.failing_required, best.failing_wishes):
                best = self.snapshot()
        return best


def arrangement_solve(
    plan: Plan,
    *,
    sizes: dict[str, tuple[float, float]],
    frame: tuple[float, float],
    rng: random.Random,
    margins: tuple[float, float],
    steps: int = REPAIR_STEPS,
) -> Solution:
    """Boxes of the given sizes, placed to satisfy the plan as far as the search gets; positional
    relations kept at GenEval score margins[0] and broken at margins[1]."""
    search = _Search(plan, sizes=sizes, frame=frame, rng=rng, margins=margins)
    search.construct()
    best = None
    for _ in range(ROUNDS):
        if search.failing == [0, 0]:
            break
        search.relax(RELAX_SWEEPS)
        found = search.repair(steps // ROUNDS)
        if best is None or (found.failing_required, found.failing_wishes) < (
            best.failing_required,
            best.failing_wishes,
        ):
            best = found
    return best or search.snapshot()
