"""render: a layout drawn into a PIL image, and the image encoded as PNG or WebP."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .geometry import Box
from .layout import Layout, layout_scene
from .palette import FLOOR_AT, RGB, is_light, scene_tint, shade
from .shapes import shape_draw

FORMATS = ("png", "webp")
# Flat colours: for these images PNG's time goes to its row filters more than to zlib, so a
# low level with run-length matching (compress_type 3, Z_RLE) keeps most of the size gain for
# little CPU; lossless WebP at method 1 is both smaller and cheaper than at method 0. Figures:
# bench/generation/RESULTS.md ("Encoder settings", bench/generation/compression.py).
PNG_COMPRESS_LEVEL = 1
PNG_COMPRESS_TYPE = 3
WEBP_METHOD = 1


@dataclass(frozen=True, slots=True)
class Rendering:
    image: Image.Image
    layout: Layout
    encoded: bytes | None  # the image in `fmt`, when render was given one
    fmt: str | None


@lru_cache(maxsize=32)
def _background(scene: str | None, width: int, height: int) -> Image.Image:
    tint = scene_tint(scene)
    image = Image.new("RGB", (width, height), tint)
    if scene is not None:
        draw = ImageDraw.Draw(image)
        floor = round(height * FLOOR_AT)
        draw.rectangle((0, floor, width, height), fill=shade(tint, 0.86))
        draw.line((0, floor, width, floor), fill=shade(tint, 0.6), width=max(1, height // 256))
    return image


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _label_size(name: str, width: float, height: float) -> int:
    by_width = 1.8 * width / max(1, len(name))
    return int(max(8, min(18, 0.24 * height, by_width)))


@lru_cache(maxsize=1024)
def _label_image(name: str, size: int, light_fill: bool) -> Image.Image:
    """The name in black on white outline (or the reverse), rendered once and pasted after."""
    ink, edge = ((0, 0, 0, 255), (255, 255, 255, 255))
    if not light_fill:
        ink, edge = edge, ink
    font = _font(size)
    x0, y0, x1, y1 = font.getbbox(name, stroke_width=1)
    image = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    ImageDraw.Draw(image).text(
        (-x0, -y0), name, font=font, fill=ink, stroke_width=1, stroke_fill=edge
    )
    return image


def _label(image: Image.Image, name: str, box: Box, size: int, fill: RGB) -> None:
    label = _label_image(name, size, is_light(fill))
    corner = (round(box.cx - label.width / 2), round(box.cy - label.height / 2))
    image.paste(label, corner, label)


def layout_draw(layout: Layout) -> Image.Image:
    """The layout as an RGB image: background by scene, objects back to front, then labels."""
    image = _background(layout.scene, layout.width, layout.height).copy()
    draw = ImageDraw.Draw(image)
    for placed in layout.objects:
        outline = shade(placed.color, 0.55) if not is_light(placed.color) else (70, 70, 70)
        for box in placed.instances:
            shape_draw(draw, shape=placed.shape, box=box, fill=placed.color, outline=outline)
    for placed in layout.objects:  # labels last, so that no object hides another's name
        for box in placed.instances:
            size = _label_size(placed.name, box.width, box.height)
            _label(image, placed.name, box, size, placed.color)
    return image


def image_encode(image: Image.Image, *, fmt: str) -> bytes:
    """PNG or lossless WebP, tuned for speed: both exact and deterministic."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(
            buffer,
            format="PNG",
            compress_level=PNG_COMPRESS_LEVEL,
            compress_type=PNG_COMPRESS_TYPE,
        )
    elif fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True, method=WEBP_METHOD, quality=0)
    else:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return buffer.getvalue()


def render(
    spec: Mapping[str, Any],
    *,
    seed: int,
    width: int = 512,
    height: int = 512,
    violate: int | None = None,
    fmt: str | None = None,
) -> Rendering:
    """Lay out the spec (see layout_scene) and draw it; encode it too when `fmt` is given."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    layout = layout_scene(spec, seed=seed, width=width, height=height, violate=violate)
    image = layout_draw(layout)
    encoded = image_encode(image, fmt=fmt) if fmt is not None else None
    return Rendering(image=image, layout=layout, encoded=encoded, fmt=fmt)
