"""Colour names and scene backgrounds: fixed, stable mappings from words to RGB."""

from __future__ import annotations

import zlib
from functools import lru_cache

from PIL import ImageColor

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 210),
    "yellow": (240, 205, 30),
    "orange": (245, 130, 20),
    "purple": (128, 60, 180),
    "pink": (240, 120, 175),
    "brown": (140, 86, 45),
    "black": (25, 25, 25),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
}

# Colours an object gets when the prompt gives none: saturated ones, which read on any background.
DEFAULT_COLORS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "pink",
    "brown",
)

SCENE_TINTS: dict[str, RGB] = {
    "kitchen": (238, 228, 206),
    "living room": (232, 222, 238),
    "bedroom": (226, 230, 246),
    "bathroom": (212, 236, 242),
    "dining room": (242, 226, 214),
    "office": (226, 230, 234),
    "classroom": (232, 240, 214),
    "library": (236, 226, 214),
    "street": (214, 216, 222),
    "park": (214, 238, 214),
    "garden": (220, 240, 206),
    "beach": (246, 236, 204),
    "forest": (206, 226, 206),
    "restaurant": (244, 230, 220),
    "garage": (220, 220, 216),
    "studio": (240, 240, 236),
}
NO_SCENE_TINT: RGB = (246, 246, 246)
FLOOR_AT = 0.7  # of the height: where a scene's wall meets its floor


def color_rgb(name: str) -> RGB | None:
    """RGB for a colour word: our palette first, then any colour name PIL knows."""
    key = name.strip().lower()
    if key in COLORS:
        return COLORS[key]
    try:
        red, green, blue = ImageColor.getrgb(key)[:3]
    except ValueError:
        return None
    return (red, green, blue)


def scene_key(scene: str) -> str:
    return " ".join(scene.strip().lower().replace("_", " ").split())


@lru_cache(maxsize=256)
def scene_tint(scene: str | None) -> RGB:
    """Wall colour of a scene; an unknown scene gets a pastel picked by a stable hash."""
    if scene is None:
        return NO_SCENE_TINT
    key = scene_key(scene)
    if key in SCENE_TINTS:
        return SCENE_TINTS[key]
    code = zlib.crc32(key.encode("utf-8"))
    return (200 + code % 48, 200 + (code >> 8) % 48, 200 + (code >> 16) % 48)


def shade(rgb: RGB, factor: float) -> RGB:
    """Darken (factor < 1) a colour."""
    return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor))


def is_light(rgb: RGB) -> bool:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150
