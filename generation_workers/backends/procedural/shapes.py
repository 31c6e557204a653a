"""The icon shapes objects are drawn as, each filling its box edge to edge.

Outlines are computed once in unit coordinates (0..1 on both axes, touching all four sides),
then scaled to an instance's box when drawn.
"""

from __future__ import annotations

import math
from functools import cache

from PIL import ImageDraw

from .geometry import Box

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "diamond",
    "cross",
    "heart",
    "pentagon",
    "octagon",
    "ring",
    "trapezoid",
    "house",
    "semicircle",
)

Points = tuple[tuple[float, float], ...]


def _normalised(points: list[tuple[float, float]]) -> Points:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x0, y0 = min(xs), min(ys)
    w, h = max(xs) - x0, max(ys) - y0
    return tuple(((x - x0) / w, (y - y0) / h) for x, y in points)


def _regular(sides: int, *, turn: float = 0.0) -> list[tuple[float, float]]:
    return [
        (math.cos(turn + 2 * math.pi * k / sides), math.sin(turn + 2 * math.pi * k / sides))
        for k in range(sides)
    ]


@cache
def unit_outline(shape: str) -> Points:
    """The shape's polygon in unit coordinates (y downwards)."""
    match shape:
        case "triangle":
            return _normalised([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)])
        case "star":
            points = []
            for k in range(10):
                radius = 1.0 if k % 2 == 0 else 0.45
                angle = -math.pi / 2 + math.pi * k / 5
                points.append((radius * math.cos(angle), radius * math.sin(angle)))
            return _normalised(points)
        case "hexagon":
            return _normalised(_regular(6))
        case "diamond":
            return _normalised([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)])
        case "cross":
            a, b = 0.32, 0.68
            return _normalised(
                [
                    (a, 0),
                    (b, 0),
                    (b, a),
                    (1, a),
                    (1, b),
                    (b, b),
                    (b, 1),
                    (a, 1),
                    (a, b),
                    (0, b),
                    (0, a),
                    (a, a),
                ]
            )
        case "heart":
            points = []
            for k in range(48):
                t = 2 * math.pi * k / 48
                x = 16 * math.sin(t) ** 3
                y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
                points.append((x, -y))
            return _normalised(points)
        case "pentagon":
            return _normalised(_regular(5, turn=-math.pi / 2))
        case "octagon":
            return _normalised(_regular(8, turn=math.pi / 8))
        case "trapezoid":
            return _normalised([(0.22, 0.0), (0.78, 0.0), (1.0, 1.0), (0.0, 1.0)])
        case "house":
            return _normalised([(0.5, 0.0), (1.0, 0.42), (1.0, 1.0), (0.0, 1.0), (0.0, 0.42)])
        case "semicircle":
            arc = [
                (math.cos(math.pi + math.pi * k / 24), math.sin(math.pi + math.pi * k / 24))
                for k in range(25)
            ]
            return _normalised(arc)
    raise ValueError(f"{shape!r} is not a polygon shape")


def shape_draw(
    draw: ImageDraw.ImageDraw,
    *,
    shape: str,
    box: Box,
    fill: tuple[int, int, int],
    outline: tuple[int, int, int],
) -> None:
    """Draw the shape so that it spans the box exactly."""
    line = max(1, round(min(box.width, box.height) / 28))
    corners = (box.x0, box.y0, box.x1 - 1, box.y1 - 1)
    if shape == "circle":
        draw.ellipse(corners, fill=fill, outline=outline, width=line)
    elif shape == "square":
        radius = round(min(box.width, box.height) * 0.12)
        draw.rounded_rectangle(corners, radius=radius, fill=fill, outline=outline, width=line)
    elif shape == "ring":
        band = max(2, round(min(box.width, box.height) * 0.24))
        draw.ellipse(corners, outline=fill, width=band)
        draw.ellipse(corners, outline=outline, width=line)
    else:
        w, h = box.width - 1, box.height - 1
        points = [(box.x0 + x * w, box.y0 + y * h) for x, y in unit_outline(shape)]
        draw.polygon(points, fill=fill, outline=outline, width=line)
