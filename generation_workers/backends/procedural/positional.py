"""Small, deliberate moves for the positional relations (left_of, right_of, above, below).

GenEval's rule ("A left_of B at score t": the centre offset v, shrunk by 0.1 x (sizeA + sizeB)
along the axis, over |v|, passes t) bounds a convex set of offsets. The solver steps onto it
(projection_step, in its relaxation) or slides one object along one axis into it (nudge, among
its repair candidates): unlike a fresh random sample, both keep most of what already holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from .check import GENEVAL_SHRINK
from .geometry import Box
from .placement import CONVERSE, DIRECTIONS, HORIZONTAL

PROJECTION_OVERSTEP = 1.1


def projection_step(relation: str, a: Box, b: Box, t: float) -> tuple[float, float] | None:
    """The change of A's offset from B that steps onto "A relation B at score t", or None when
    it holds (see solver._Search.relax)."""
    horizontal = relation in ("left_of", "right_of")
    sign = -1.0 if relation in ("left_of", "above") else 1.0
    if horizontal:
        along, across = sign * (a.cx - b.cx), a.cy - b.cy
        shrink = GENEVAL_SHRINK * (a.width + b.width)
    else:
        along, across = sign * (a.cy - b.cy), a.cx - b.cx
        shrink = GENEVAL_SHRINK * (a.height + b.height)
    length = math.hypot(along, across)
    excess = t * length - along + shrink
    if excess <= 0:
        return None
    if length > 1e-9:
        grad_along, grad_across = t * along / length - 1, t * across / length
    else:
        grad_along, grad_across = -1.0, 0.0
    step = excess / (grad_along**2 + grad_across**2) * PROJECTION_OVERSTEP
    d_along, d_across = -step * grad_along * sign, -step * grad_across
    return (d_along, d_across) if horizontal else (d_across, d_along)


def nudge(
    relation: str,
    role: int,
    *,
    members: tuple[str, ...],
    boxes: Mapping[str, Box],
    threshold: float,
    rng: random.Random,
) -> list[Box]:
    """Small moves of members[role] along one axis that make a positional relation hold at
    GenEval score `threshold`, keeping its other coordinate: unlike a fresh sample, they keep
    most of what already holds, which chains of relations need."""
    if relation not in DIRECTIONS or len(members) != 2:
        return []
    if role == 1:
        relation = CONVERSE[relation]
    moving, ref = boxes[members[role]], boxes[members[1 - role]]
    horizontal = relation in HORIZONTAL
    sign = -1.0 if relation in ("left_of", "above") else 1.0
    if horizontal:
        along, across = moving.cx - ref.cx, moving.cy - ref.cy
        shrink = GENEVAL_SHRINK * (moving.width + ref.width)
    else:
        along, across = moving.cy - ref.cy, moving.cx - ref.cx
        shrink = GENEVAL_SHRINK * (moving.height + ref.height)
    t = threshold
    # The smallest |along| with (|along| - shrink) / hypot(along, across) > t.
    needed = (shrink + t * math.sqrt(shrink**2 + (1 - t * t) * across**2)) / (1 - t * t)
    moves = [(sign * needed * rng.uniform(1.02, 1.25), across)]
    if sign * along > shrink:
        # Or bring it in line: the largest |across| that the current |along| allows.
        room = ((abs(along) - shrink) / t) ** 2 - along**2
        if room > 0:
            moves.append((along, math.copysign(math.sqrt(room), across) * rng.uniform(0, 0.9)))
    found = []
    for new_along, new_across in moves:
        dx, dy = (new_along, new_across) if horizontal else (new_across, new_along)
        found.append(moving.moved(ref.cx + dx - moving.cx, ref.cy + dy - moving.cy))
    return found
