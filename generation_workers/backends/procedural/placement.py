"""Random candidate boxes for one object such that one relation (probably) holds.

The solver asks for a few candidates per relation and keeps the one that breaks the fewest
others, so a sampler only has to land inside its own relation most of the time, with variety.
Each sampler places the moving object relative to an already placed reference box.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from .check import GENEVAL_SHRINK, MIN_SIDE_OVERLAP
from .geometry import Box

# Placing the object of "A rel B" is placing its subject under the converse relation.
CONVERSE: dict[str, str] = {
    "left_of": "right_of",
    "right_of": "left_of",
    "above": "below",
    "below": "above",
    "in_front_of": "behind",
    "behind": "in_front_of",
    "on_top_of": "under",
    "under": "on_top_of",
    "inside": "_contains",
    "next_to": "next_to",
    "near": "near",
    "centered_on": "_centered_under",
    "aligned_with_edge_of": "aligned_with_edge_of",
    "against": "against",
    "_far": "_far",
    "_unaligned": "_unaligned",
    "_off_centre_on": "_off_centre_under",
}
DIRECTIONS = {"right_of": 0.0, "below": math.pi / 2, "left_of": math.pi, "above": -math.pi / 2}
HORIZONTAL = frozenset({"left_of", "right_of"})
DIAGONAL_TARGET = 0.62  # the GenEval score aimed at on both axes of a diagonal
SPREAD = 1.0  # radians either side of the pure direction: diagonals too


def _directional(
    relation: str, ref: Box, w: float, h: float, rng: random.Random, toward: tuple[str, ...]
) -> Box:
    horizontal = relation in HORIZONTAL
    crossing = [d for d in toward if d in DIRECTIONS and (d in HORIZONTAL) != horizontal]
    if crossing and rng.random() < 0.5:  # not always: the other relation may be the one to break
        return _diagonal((relation, crossing[0]), ref, w, h, rng)
    theta = DIRECTIONS[relation] + rng.uniform(-SPREAD, SPREAD)
    cos, sin = math.cos(theta), math.sin(theta)
    gap = rng.uniform(0.15, 0.6) * (w + h + ref.width + ref.height) / 4
    if relation in HORIZONTAL:
        ox = math.copysign((w + ref.width) / 2 + gap, cos)
        oy = ox * sin / cos
    else:
        oy = math.copysign((h + ref.height) / 2 + gap, sin)
        ox = oy * cos / sin
    return Box.around(ref.cx + ox, ref.cy + oy, w, h)


def _diagonal(relations: tuple[str, str], ref: Box, w: float, h: float, rng: random.Random) -> Box:
    """Both a horizontal and a vertical relation: GenEval's rule passes both only near 45
    degrees and far enough for the size shrink to matter little."""
    ux = sum(math.cos(DIRECTIONS[r]) for r in relations) / math.sqrt(2)
    uy = sum(math.sin(DIRECTIONS[r]) for r in relations) / math.sqrt(2)
    # At 45 degrees the score on each axis is 1/sqrt(2) - shrink / distance.
    shrink = GENEVAL_SHRINK * max(w + ref.width, h + ref.height)
    distance = shrink / (1 / math.sqrt(2) - DIAGONAL_TARGET)
    distance *= rng.uniform(1.05, 1.5)
    return Box.around(ref.cx + ux * distance, ref.cy + uy * distance, w, h)


def _stacked(
    ref: Box, w: float, h: float, rng: random.Random, *, on_top: bool, offset: float | None
) -> Box:
    """On top of (or under) ref, touching; centre offset `offset`, or any that still overlaps."""
    if offset is None:
        reach = max(0.0, (w + ref.width) / 2 - (MIN_SIDE_OVERLAP + 0.1) * min(w, ref.width))
        offset = rng.uniform(-reach, reach)
    cy = ref.y0 - h / 2 if on_top else ref.y1 + h / 2
    return Box.around(ref.cx + offset, cy, w, h)


def _depth(ref: Box, w: float, h: float, rng: random.Random, *, in_front: bool) -> Box:
    offset = rng.choice((-1, 1)) * rng.uniform(0.2, 0.7) * (w + ref.width) / 2
    if in_front:
        bottom = ref.y1 + rng.uniform(0.15, 0.8) * h
    else:
        bottom = ref.y1 - rng.uniform(0.15, 0.8) * ref.height
    return Box.around(ref.cx + offset, bottom - h / 2, w, h)


def _beside(ref: Box, w: float, h: float, rng: random.Random, *, gap: float) -> Box:
    side = rng.choice((-1, 1))
    cx = ref.cx + side * ((w + ref.width) / 2 + gap)
    if rng.random() < 0.5:
        cy = ref.y1 - h / 2  # standing on the same line
    else:
        cy = ref.cy + rng.uniform(-0.25, 0.25) * min(h, ref.height)
    return Box.around(cx, cy, w, h)


def _at_distance(ref: Box, w: float, h: float, rng: random.Random, *, gap: float) -> Box:
    side = rng.choice((-1, 1))
    if rng.random() < 0.6:
        cx = ref.cx + side * ((w + ref.width) / 2 + gap)
        cy = ref.cy + rng.uniform(-0.5, 0.5) * (h + ref.height) / 2
    else:
        cy = ref.cy + side * ((h + ref.height) / 2 + gap)
        cx = ref.cx + rng.uniform(-0.5, 0.5) * (w + ref.width) / 2
    return Box.around(cx, cy, w, h)


def _aligned(ref: Box, w: float, h: float, rng: random.Random) -> Box:
    edge = rng.choice(("left", "right", "top", "bottom"))
    gap = rng.uniform(0.15, 0.6) * (w + h + ref.width + ref.height) / 4
    side = rng.choice((-1, 1))
    if edge in ("top", "bottom"):
        cx = ref.cx + side * ((w + ref.width) / 2 + gap)
        cy = ref.y0 + h / 2 if edge == "top" else ref.y1 - h / 2
    else:
        cy = ref.cy + side * ((h + ref.height) / 2 + gap)
        cx = ref.x0 + w / 2 if edge == "left" else ref.x1 - w / 2
    return Box.around(cx, cy, w, h)


def _within(inner_w: float, inner_h: float, outer: Box, rng: random.Random) -> Box | None:
    if inner_w >= outer.width or inner_h >= outer.height:
        return None
    x0 = outer.x0 + rng.uniform(0.1, 0.9) * (outer.width - inner_w)
    y0 = outer.y0 + rng.uniform(0.1, 0.9) * (outer.height - inner_h)
    return Box(x0, y0, x0 + inner_w, y0 + inner_h)


def _around(inner: Box, w: float, h: float, rng: random.Random) -> Box | None:
    if w <= inner.width or h <= inner.height:
        return None
    x0 = inner.x0 - rng.uniform(0.1, 0.9) * (w - inner.width)
    y0 = inner.y0 - rng.uniform(0.1, 0.9) * (h - inner.height)
    return Box(x0, y0, x0 + w, y0 + h)


def _place(
    relation: str,
    ref: Box,
    w: float,
    h: float,
    rng: random.Random,
    toward: tuple[str, ...] = (),
) -> Box | None:
    """A box of size (w, h) such that `box relation ref` should hold."""
    mean_side = (w + h + ref.width + ref.height) / 4
    match relation:
        case "left_of" | "right_of" | "above" | "below":
            return _directional(relation, ref, w, h, rng, toward)
        case "on_top_of" | "under":
            return _stacked(ref, w, h, rng, on_top=relation == "on_top_of", offset=None)
        case "centered_on" | "_centered_under":
            return _stacked(ref, w, h, rng, on_top=relation == "centered_on", offset=0.0)
        case "_off_centre_on":
            offset = rng.choice((-1, 1)) * rng.uniform(0.2, 0.35) * ref.width
            return _stacked(ref, w, h, rng, on_top=True, offset=offset)
        case "_off_centre_under":
            offset = rng.choice((-1, 1)) * rng.uniform(0.2, 0.35) * w
            return _stacked(ref, w, h, rng, on_top=False, offset=offset)
        case "in_front_of" | "behind":
            return _depth(ref, w, h, rng, in_front=relation == "in_front_of")
        case "inside":
            return _within(w, h, ref, rng)
        case "_contains":
            return _around(ref, w, h, rng)
        case "next_to":
            return _beside(ref, w, h, rng, gap=rng.uniform(0.08, 0.3) * min(w, ref.width))
        case "against":
            return _beside(ref, w, h, rng, gap=0.0)
        case "near":
            return _at_distance(ref, w, h, rng, gap=rng.uniform(0.1, 0.45) * mean_side)
        case "_far":
            return _at_distance(ref, w, h, rng, gap=rng.uniform(1.1, 1.6) * mean_side)
        case "aligned_with_edge_of":
            return _aligned(ref, w, h, rng)
    raise ValueError(f"no sampler for {relation!r}")


def _shifted(current: Box | None, ref: Box, w: float, h: float, rng: random.Random) -> Box:
    """Off every edge of ref: the current box moved a little on both axes (so that what else
    holds mostly still does), or, not yet placed, a box close to ref."""
    if current is None:
        return _at_distance(ref, w, h, rng, gap=rng.uniform(0.1, 0.45) * (w + h) / 2)
    dx = rng.choice((-1, 1)) * rng.uniform(0.1, 0.3) * w
    dy = rng.choice((-1, 1)) * rng.uniform(0.1, 0.3) * h
    return current.moved(dx, dy)


def _unit(dx: float, dy: float, rng: random.Random) -> tuple[float, float]:
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return (rng.choice((-1.0, 1.0)), 0.0)
    return (dx / length, dy / length)


def _between(
    role: int,
    members: tuple[str, ...],
    boxes: Mapping[str, Box],
    w: float,
    h: float,
    rng: random.Random,
) -> Box:
    if role == 0:
        b, c = boxes[members[1]], boxes[members[2]]
        t = rng.uniform(0.4, 0.6)
        return Box.around(b.cx + t * (c.cx - b.cx), b.cy + t * (c.cy - b.cy), w, h)
    middle, far_end = boxes[members[0]], boxes[members[3 - role]]
    ux, uy = _unit(middle.cx - far_end.cx, middle.cy - far_end.cy, rng)
    clearance = 1.2 * (max(w, h) + max(middle.width, middle.height)) / 2
    distance = max(math.hypot(middle.cx - far_end.cx, middle.cy - far_end.cy), clearance)
    distance *= rng.uniform(0.9, 1.3)
    return Box.around(middle.cx + ux * distance, middle.cy + uy * distance, w, h)


def _outside(
    members: tuple[str, ...], boxes: Mapping[str, Box], w: float, h: float, rng: random.Random
) -> Box:
    end, other = boxes[members[1]], boxes[members[2]]
    if rng.random() < 0.5:
        end, other = other, end
    ux, uy = _unit(end.cx - other.cx, end.cy - other.cy, rng)
    distance = (max(w, h) + max(end.width, end.height)) / 2
    distance += rng.uniform(0.15, 0.5) * (w + h + end.width + end.height) / 4
    return Box.around(end.cx + ux * distance, end.cy + uy * distance, w, h)


def propose(
    relation: str,
    role: int,
    *,
    members: tuple[str, ...],
    boxes: Mapping[str, Box],
    size: tuple[float, float],
    rng: random.Random,
    toward: tuple[str, ...] = (),
) -> Box | None:
    """A box for members[role] (the others stay) such that the relation should hold.

    `toward`: other relations the moving object must also have to the same reference object,
    from its own side (for a horizontal and a vertical one at once: a diagonal)."""
    w, h = size
    if relation == "_unaligned":
        return _shifted(boxes.get(members[role]), boxes[members[1 - role]], w, h, rng)
    if relation == "between":
        return _between(role, members, boxes, w, h, rng)
    if relation == "_outside":
        return _outside(members, boxes, w, h, rng) if role == 0 else None
    if role == 0:
        return _place(relation, boxes[members[1]], w, h, rng, toward)
    return _place(CONVERSE[relation], boxes[members[0]], w, h, rng, toward)


def propose_free(
    *, frame: tuple[float, float], size: tuple[float, float], rng: random.Random
) -> Box:
    """Anywhere in the frame, for an object no placed object constrains."""
    w, h = size
    cx = rng.uniform(w / 2, max(w / 2, frame[0] - w / 2))
    cy = rng.uniform(h / 2, max(h / 2, frame[1] - h / 2))
    return Box.around(cx, cy, w, h)
