"""How an object looks, chosen from its name by a stable hash: shape, default colour, aspect."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .palette import DEFAULT_COLORS, RGB, color_rgb
from .shapes import SHAPES

# Width / height of one instance; most icons are square, some wide, some tall.
ASPECTS: tuple[float, ...] = (1.0, 1.0, 1.25, 0.8)


@dataclass(frozen=True, slots=True)
class Appearance:
    shape: str
    color: RGB
    aspect: float


def name_code(name: str) -> int:
    """A hash of the name that is the same in every process (unlike hash())."""
    return zlib.crc32(" ".join(name.strip().lower().split()).encode("utf-8"))


def appearance_for(*, name: str, color: str | None) -> Appearance:
    code = name_code(name)
    shape = SHAPES[code % len(SHAPES)]
    aspect = ASPECTS[(code >> 8) % len(ASPECTS)]
    rgb = color_rgb(color) if color is not None else None
    if rgb is None:
        rgb = color_rgb(DEFAULT_COLORS[(code >> 16) % len(DEFAULT_COLORS)])
    assert rgb is not None  # every default colour is in the palette
    return Appearance(shape=shape, color=rgb, aspect=aspect)
