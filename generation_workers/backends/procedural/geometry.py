"""Axis-aligned boxes in image coordinates (x to the right, y downwards), in pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """A box from (x0, y0), its top-left corner, to (x1, y1), its bottom-right corner."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def around(cls, cx: float, cy: float, width: float, height: float) -> Box:
        return cls(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def mean_side(self) -> float:
        return (self.x1 - self.x0 + self.y1 - self.y0) / 2

    def moved(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def scaled(self, factor: float, dx: float, dy: float) -> Box:
        """Scale about the origin, then move by (dx, dy)."""
        return Box(
            self.x0 * factor + dx,
            self.y0 * factor + dy,
            self.x1 * factor + dx,
            self.y1 * factor + dy,
        )

    def overlap_x(self, other: Box) -> float:
        """Length shared on the x axis; negative: the horizontal gap between them."""
        return min(self.x1, other.x1) - max(self.x0, other.x0)

    def overlap_y(self, other: Box) -> float:
        return min(self.y1, other.y1) - max(self.y0, other.y0)

    def intersection_area(self, other: Box) -> float:
        ox = min(self.x1, other.x1) - max(self.x0, other.x0)
        if ox <= 0:
            return 0.0
        oy = min(self.y1, other.y1) - max(self.y0, other.y0)
        return ox * oy if oy > 0 else 0.0

    def gap(self, other: Box) -> float:
        """Shortest distance between the two boxes; 0 when they touch or overlap."""
        gx = max(0.0, other.x0 - self.x1, self.x0 - other.x1)
        gy = max(0.0, other.y0 - self.y1, self.y0 - other.y1)
        return math.hypot(gx, gy)

    def contains(self, other: Box) -> bool:
        return (
            self.x0 <= other.x0
            and other.x1 <= self.x1
            and self.y0 <= other.y0
            and other.y1 <= self.y1
        )


def union_box(boxes: list[Box]) -> Box:
    return Box(
        min(b.x0 for b in boxes),
        min(b.y0 for b in boxes),
        max(b.x1 for b in boxes),
        max(b.y1 for b in boxes),
    )
