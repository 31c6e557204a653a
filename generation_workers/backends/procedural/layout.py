"""layout_scene: boxes for every object of a structured prompt such that its relations hold.

Sizes come from the size attribute, the count, the depth plane and the number of objects; the
solver places the boxes in a frame the size of the canvas; the whole arrangement is then scaled
down if needed and moved, at random, into the canvas. Every relation is invariant under that
(scale and translation), so what held in the frame holds in the image.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .appearance import appearance_for
from .check import relation_holds
from .geometry import Box, union_box
from .orders import draw_order
from .palette import FLOOR_AT, RGB
from .plan import (
    MARGINS,
    SUBSTITUTES,
    LayoutError,
    Plan,
    plan_best_effort,
    plan_build,
)
from .solver import Solution, arrangement_solve
from .spec import SceneSpec, SpecError, scene_spec_parse

SIZE_FRACTION = {"small": 0.14, "medium": 0.2, "large": 0.27}  # of the canvas' shorter side
DEPTH_SCALE = 0.8  # each plane further back is drawn this much smaller
CROWD = 3.5  # above this many objects, sizes shrink with 1/sqrt(objects)
INSIDE_FRACTION = 0.6  # the most of its container's width (and height) an object may take
INSTANCE_GAP = 0.15  # between instances of one group, in instance sizes
COUNT_SCALE = {1: 1.0, 2: 0.72, 3: 0.6, 4: 0.5}  # instance size by columns in the group
MARGIN = 0.04  # of the canvas' shorter side, kept free around the scene
MIN_SCALE = 0.35  # a fit that shrinks the scene more than this counts as poor
ATTEMPTS = 4  # fresh sizes and a fresh search, per plan and margin


@dataclass(frozen=True, slots=True)
class PlacedObject:
    id: str
    name: str
    count: int
    size: str
    shape: str
    color: RGB
    depth: int  # depth plane, 0 at the front; each plane back is drawn smaller and earlier
    box: Box  # the group's bounding box
    instances: tuple[Box, ...]  # one per counted instance, inside `box`


@dataclass(frozen=True, slots=True)
class Layout:
    width: int
    height: int
    scene: str | None
    seed: int
    violated: int | None  # the relation made not to hold, if one was asked for
    objects: tuple[PlacedObject, ...]  # in draw order: back to front

    @property
    def boxes(self) -> dict[str, Box]:
        return {o.id: o.box for o in self.objects}

    @property
    def depth(self) -> dict[str, int]:
        return {o.id: o.depth for o in self.objects}

    @property
    def order(self) -> dict[str, int]:
        """Draw rank of each object: higher is drawn later, over the lower ones."""
        return {o.id: i for i, o in enumerate(self.objects)}

    def object(self, object_id: str) -> PlacedObject:
        return next(o for o in self.objects if o.id == object_id)


@dataclass(frozen=True, slots=True)
class _Canvas:
    """What every attempt shares: the image size, the seed and its generator, the violation."""

    width: int
    height: int
    seed: int
    violate: int | None
    rng: random.Random


def _group_grid(count: int) -> tuple[int, int]:
    """(columns, rows) of a group of `count` instances."""
    columns = count if count <= 3 else min(4, math.ceil(math.sqrt(count)))
    return columns, math.ceil(count / columns)


def _sizes(
    scene: SceneSpec, plan: Plan, *, side: float, rng: random.Random
) -> dict[str, tuple[float, float]]:
    crowd = min(1.0, math.sqrt(CROWD / len(scene.objects)))
    sizes = {}
    for spec in scene.objects:
        aspect = appearance_for(name=spec.name, color=spec.color).aspect
        columns, rows = _group_grid(spec.count)
        instance = SIZE_FRACTION[spec.size] * crowd * side * COUNT_SCALE[columns]
        instance *= DEPTH_SCALE ** plan.depth[spec.id] * rng.uniform(0.92, 1.08)
        width = instance * math.sqrt(aspect) * (columns + (columns - 1) * INSTANCE_GAP)
        height = instance / math.sqrt(aspect) * (rows + (rows - 1) * INSTANCE_GAP)
        sizes[spec.id] = (width, height)
    inside = [c.relation for c in plan.constraints if c.effective == "inside"]
    for relation in sorted(inside, key=lambda r: plan.order[r.objects[0]]):  # outermost first
        inner_w, inner_h = sizes[relation.subject]
        outer_w, outer_h = sizes[relation.objects[0]]
        factor = min(1.0, INSIDE_FRACTION * outer_w / inner_w, INSIDE_FRACTION * outer_h / inner_h)
        sizes[relation.subject] = (inner_w * factor, inner_h * factor)
    return sizes


def _instances(box: Box, count: int) -> tuple[Box, ...]:
    columns, rows = _group_grid(count)
    width = box.width / (columns + (columns - 1) * INSTANCE_GAP)
    height = box.height / (rows + (rows - 1) * INSTANCE_GAP)
    step_x, step_y = width * (1 + INSTANCE_GAP), height * (1 + INSTANCE_GAP)
    instances = []
    for k in range(count):
        row, column = divmod(k, columns)
        in_row = min(columns, count - row * columns)
        x0 = box.x0 + (columns - in_row) * step_x / 2 + column * step_x
        y0 = box.y0 + row * step_y
        instances.append(Box(x0, y0, x0 + width, y0 + height))
    return tuple(instances)


def _fit(
    boxes: dict[str, Box], *, width: int, height: int, rng: random.Random
) -> tuple[dict[str, Box], float]:
    extent = union_box(list(boxes.values()))
    margin = MARGIN * min(width, height)
    free_w, free_h = width - 2 * margin, height - 2 * margin
    scale = min(1.0, free_w / extent.width, free_h / extent.height)
    dx = margin + rng.uniform(0, free_w - extent.width * scale) - extent.x0 * scale
    # The scene stands on the floor: its bottom goes below the wall line when there is room.
    lowest = height - margin - extent.height * scale
    highest = min(lowest, max(margin, FLOOR_AT * height - extent.height * scale))
    dy = rng.uniform(highest, lowest) - extent.y0 * scale
    return {node: box.scaled(scale, dx, dy) for node, box in boxes.items()}, scale


def _assemble(scene: SceneSpec, plan: Plan, boxes: dict[str, Box], *, canvas: _Canvas) -> Layout:
    ids = [o.id for o in scene.objects]
    bottoms = {node: box.y1 for node, box in boxes.items()}
    ordered = draw_order(ids, depth=plan.depth, after=plan.draw_after, bottoms=bottoms)
    specs = {o.id: o for o in scene.objects}
    placed = []
    for node in ordered:
        spec = specs[node]
        look = appearance_for(name=spec.name, color=spec.color)
        placed.append(
            PlacedObject(
                id=node,
                name=spec.name,
                count=spec.count,
                size=spec.size,
                shape=look.shape,
                color=look.color,
                depth=plan.depth[node],
                box=boxes[node],
                instances=_instances(boxes[node], spec.count),
            )
        )
    return Layout(
        width=canvas.width,
        height=canvas.height,
        scene=scene.scene,
        seed=canvas.seed,
        violated=canvas.violate,
        objects=tuple(placed),
    )


def _misses(layout: Layout, scene: SceneSpec, violate: int | None) -> list[int]:
    """Relations the layout gets wrong: one that fails, or the violated one if it holds."""
    boxes, depth, order = layout.boxes, layout.depth, layout.order
    wrong = []
    for relation in scene.relations:
        holds = relation_holds(
            relation.relation,
            relation.subject,
            relation.objects,
            boxes=boxes,
            depth=depth,
            order=order,
        )
        if holds == (relation.index == violate):
            wrong.append(relation.index)
    return wrong


def _search(scene: SceneSpec, plan: Plan, canvas: _Canvas) -> tuple[Layout | None, list[int]]:
    """The best layout over a few attempts and the relations it gets wrong; when no attempt
    met every required constraint: None and the relations the closest attempt missed. Stops at
    the first exact layout that fits the canvas well."""
    best: tuple[tuple[int, bool], Layout] | None = None
    best_misses: list[int] = []
    closest: Solution | None = None
    for margins in [m for m in MARGINS for _ in range(ATTEMPTS)]:
        sizes = _sizes(scene, plan, side=min(canvas.width, canvas.height), rng=canvas.rng)
        solution = arrangement_solve(
            plan, sizes=sizes, frame=(canvas.width, canvas.height), rng=canvas.rng, margins=margins
        )
        if solution.failing_required:
            if closest is None or solution.failing_required < closest.failing_required:
                closest = solution
            continue
        boxes, scale = _fit(
            solution.boxes, width=canvas.width, height=canvas.height, rng=canvas.rng
        )
        layout = _assemble(scene, plan, boxes, canvas=canvas)
        misses = _misses(layout, scene, canvas.violate)
        if canvas.violate is not None and canvas.violate in misses:
            continue
        rank = (len(misses), scale < MIN_SCALE)
        if best is None or rank < best[0]:
            best = (rank, layout)
            best_misses = misses
        if rank == (0, False):
            break
    if best is None:
        return None, sorted(set(closest.unmet)) if closest else []
    return best[1], best_misses


def _best_effort_scene(scene: SceneSpec, violate: int) -> tuple[SceneSpec, Plan]:
    """The violated relation's stand-in plus, in spec order, every other relation that does not
    contradict what is kept so far; of the stand-ins, the one that keeps the most."""
    broken = scene.relations[violate]
    best: tuple[SceneSpec, Plan] | None = None
    for substitute in SUBSTITUTES[broken.relation]:
        kept = [broken]
        for relation in scene.relations:
            if relation.index == violate:
                continue
            trial = SceneSpec(
                objects=scene.objects,
                relations=tuple(sorted([*kept, relation], key=lambda r: r.index)),
                scene=scene.scene,
            )
            try:
                plan_build(trial, violate=violate, substitute=substitute)
            except LayoutError:
                continue
            kept.append(relation)
        reduced = SceneSpec(
            objects=scene.objects,
            relations=tuple(sorted(kept, key=lambda r: r.index)),
            scene=scene.scene,
        )
        if best is None or len(kept) > len(best[0].relations):
            best = (reduced, plan_build(reduced, violate=violate, substitute=substitute))
    assert best is not None  # every relation has a stand-in
    return best[0], plan_best_effort(best[1], violate=violate)


def layout_scene(
    spec: Mapping[str, Any],
    *,
    seed: int,
    width: int,
    height: int,
    violate: int | None = None,
) -> Layout:
    """Boxes for every object of the spec such that every relation holds, or, with
    `violate=i`, such that relation i does not hold and the others still do where possible.

    Deterministic for a seed. Raises SpecError for a malformed spec and LayoutError when the
    relations contradict each other or no layout satisfying them was found.
    """
    scene = scene_spec_parse(spec)
    if violate is not None and not 0 <= violate < len(scene.relations):
        raise SpecError(f"violate={violate}, but the spec has {len(scene.relations)} relations")
    rng = random.Random(seed)  # the only source of randomness: a seed fixes the layout
    canvas = _Canvas(width=width, height=height, seed=seed, violate=violate, rng=rng)
    if violate is None:
        plan = plan_build(scene, violate=None, substitute=None)
        layout, misses = _search(scene, plan, canvas)
        if layout is None or misses:
            listed = ", ".join(scene.relations[i].describe() for i in misses)
            raise LayoutError(
                f"no layout found that satisfies every relation ({ATTEMPTS * len(MARGINS)} "
                f"attempts); the closest missed {listed}"
            )
        return layout
    for substitute in SUBSTITUTES[scene.relations[violate].relation]:
        try:
            plan = plan_build(scene, violate=violate, substitute=substitute)
        except LayoutError:
            continue
        layout, misses = _search(scene, plan, canvas)
        if layout is not None and not misses:
            return layout
    reduced, plan = _best_effort_scene(scene, violate)
    layout, _ = _search(reduced, plan, canvas)
    if layout is None:
        raise LayoutError(f"no layout breaks {scene.relations[violate].describe()}")
    return layout
