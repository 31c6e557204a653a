"""Whether a spatial relation holds between boxes: the one definition the layout and tests share.

Positional relations (left_of, right_of, above, below) use GenEval's rule: the centre offset,
shrunk by 0.1 x (sizeA + sizeB) on each axis and divided by the length of the raw offset, must
pass -0.5 (left, above) or +0.5 (right, below). The others are read off the boxes, the depth
plane of each object (0 is the front plane) and the draw order (higher is drawn later).
Tolerances are relative to the objects' sizes, so a layout scaled to fit the canvas keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .geometry import Box
from .spec import scene_spec_parse

if TYPE_CHECKING:
    from .layout import Layout

GENEVAL_SHRINK = 0.1
GENEVAL_THRESHOLD = 0.5
CONTACT_TOLERANCE = 0.04  # of the smaller height (on_top_of) or width (against)
EDGE_TOLERANCE = 0.03  # of the smaller side, for aligned edges
MIN_SIDE_OVERLAP = 0.3  # of the smaller side: "horizontally overlapping", "side by side"
NEXT_TO_GAP = 0.35  # of the smaller width
NEAR_GAP = 0.6  # of the mean side of the two
FAR_GAP = 1.0  # of the mean side of the two
BETWEEN_MARGIN = 0.25  # of the subject's side on that axis
CENTRED_TOLERANCE = 0.05  # of the lower object's width
OFF_CENTRE = 0.15  # of the lower object's width
FRONT_MIN_OVERLAP = 0.03  # of the smaller area: the two must visibly overlap
BACK_MAX_COVERED = 0.6  # of the back object's area: it must stay visible


def geneval_direction(a: Box, b: Box) -> tuple[float, float]:
    """GenEval's normalised, shrunk offset of A's centre from B's."""
    ox = a.cx - b.cx
    oy = a.cy - b.cy
    rx = math.copysign(max(abs(ox) - GENEVAL_SHRINK * (a.width + b.width), 0.0), ox)
    ry = math.copysign(max(abs(oy) - GENEVAL_SHRINK * (a.height + b.height), 0.0), oy)
    if abs(rx) < 1e-3 and abs(ry) < 1e-3:
        return 0.0, 0.0
    norm = math.hypot(ox, oy)
    return rx / norm, ry / norm


def on_top_of(a: Box, b: Box) -> bool:
    """A rests on B: A's bottom edge on B's top edge, the two overlapping horizontally."""
    return abs(a.y1 - b.y0) <= CONTACT_TOLERANCE * min(a.height, b.height) and (
        a.overlap_x(b) >= MIN_SIDE_OVERLAP * min(a.width, b.width)
    )


def side_gap(a: Box, b: Box) -> float | None:
    """Horizontal gap between two side-by-side boxes; None when they are not side by side."""
    if a.overlap_y(b) < MIN_SIDE_OVERLAP * min(a.height, b.height):
        return None
    return -a.overlap_x(b)


def between(a: Box, b: Box, c: Box, *, margin: float) -> bool:
    lo, hi = sorted((b.cx, c.cx))
    if lo + margin * a.width < a.cx < hi - margin * a.width:
        return True
    lo, hi = sorted((b.cy, c.cy))
    return lo + margin * a.height < a.cy < hi - margin * a.height


def edges_aligned(a: Box, b: Box, *, tolerance: float = EDGE_TOLERANCE) -> bool:
    x_tolerance = tolerance * min(a.width, b.width)
    y_tolerance = tolerance * min(a.height, b.height)
    return (
        abs(a.x0 - b.x0) <= x_tolerance
        or abs(a.x1 - b.x1) <= x_tolerance
        or abs(a.y0 - b.y0) <= y_tolerance
        or abs(a.y1 - b.y1) <= y_tolerance
    )


def in_front_of(a: Box, b: Box, *, depth_a: int, depth_b: int, order_a: int, order_b: int) -> bool:
    """A nearer than B: on a nearer plane (so drawn larger), drawn later, lower, overlapping."""
    if depth_a >= depth_b or order_a <= order_b or a.y1 <= b.y1:
        return False
    shared = a.intersection_area(b)
    return shared >= FRONT_MIN_OVERLAP * min(a.area, b.area) and shared <= BACK_MAX_COVERED * b.area


def relation_holds(
    relation: str,
    subject: str,
    objects: tuple[str, ...],
    *,
    boxes: Mapping[str, Box],
    depth: Mapping[str, int],
    order: Mapping[str, int],
    threshold: float = GENEVAL_THRESHOLD,
) -> bool:
    """Whether `subject relation objects` holds. Relations starting with "_" are the layout's
    own (the stand-ins it uses to break a relation); `threshold` is GenEval's 0.5 by default."""
    a = boxes[subject]
    b = boxes[objects[0]]
    match relation:
        case "left_of":
            return geneval_direction(a, b)[0] < -threshold
        case "right_of":
            return geneval_direction(a, b)[0] > threshold
        case "above":
            return geneval_direction(a, b)[1] < -threshold
        case "below":
            return geneval_direction(a, b)[1] > threshold
        case "in_front_of" | "behind":
            front, back = subject, objects[0]
            if relation == "behind":
                front, back = back, front
            return in_front_of(
                boxes[front],
                boxes[back],
                depth_a=depth[front],
                depth_b=depth[back],
                order_a=order[front],
                order_b=order[back],
            )
        case "on_top_of":
            return on_top_of(a, b)
        case "under":
            return on_top_of(b, a)
        case "inside":
            return b.contains(a) and order[subject] > order[objects[0]]
        case "next_to":
            gap = side_gap(a, b)
            narrow = min(a.width, b.width)
            return gap is not None and -CONTACT_TOLERANCE * narrow <= gap <= NEXT_TO_GAP * narrow
        case "near":
            return a.gap(b) <= NEAR_GAP * (a.mean_side + b.mean_side) / 2
        case "between":
            return between(a, b, boxes[objects[1]], margin=BETWEEN_MARGIN)
        case "centered_on":
            if abs(a.cx - b.cx) > CENTRED_TOLERANCE * b.width:
                return False
            over = order[subject] > order[objects[0]] and b.y0 <= a.cy <= b.y1
            return over or on_top_of(a, b)
        case "aligned_with_edge_of":
            return edges_aligned(a, b)
        case "against":
            gap = side_gap(a, b)
            return gap is not None and abs(gap) <= CONTACT_TOLERANCE * min(a.width, b.width)
        case "_far":
            return a.gap(b) >= FAR_GAP * (a.mean_side + b.mean_side) / 2
        case "_off_centre_on":
            return on_top_of(a, b) and abs(a.cx - b.cx) >= OFF_CENTRE * b.width
        case "_unaligned":
            return not edges_aligned(a, b, tolerance=3 * EDGE_TOLERANCE)
        case "_outside":
            return not between(a, b, boxes[objects[1]], margin=0.0)
    raise ValueError(f"unknown relation {relation!r}")


def check_layout(spec: Mapping[str, Any], layout: Layout) -> dict[int, bool]:
    """For each relation of the spec (by its index), whether the layout's boxes satisfy it."""
    scene = scene_spec_parse(spec)
    boxes = layout.boxes
    depth = layout.depth
    order = layout.order
    return {
        relation.index: relation_holds(
            relation.relation,
            relation.subject,
            relation.objects,
            boxes=boxes,
            depth=depth,
            order=order,
        )
        for relation in scene.relations
    }
