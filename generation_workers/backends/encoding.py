"""An image as PNG or WebP bytes, the formats a config may ask for."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

CONTENT_TYPES = {"png": "image/png", "webp": "image/webp"}
# zlib level 1: most of level 6's size for much less CPU on a model's images (figures:
# bench/generation/RESULTS.md, "Encoder settings").
PNG_COMPRESS_LEVEL = 1
WEBP_METHOD = 0  # lossless WebP at its fastest method: exact pixels, still smaller than PNG


def image_encode(image: Image.Image, *, fmt: str) -> bytes:
    """Lossless bytes of the image: the stored pixels are the rendered pixels."""
    buffer = io.BytesIO()
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True, method=WEBP_METHOD)
    else:
        raise ValueError(f"image format must be one of {', '.join(CONTENT_TYPES)}, not {fmt!r}")
    return buffer.getvalue()
