"""The procedural backend: simple scenes drawn from a structured prompt, with known spatial truth.

Pure Python and Pillow (no Django, no torch). `layout_scene` places each object as a box so that
every relation of the prompt holds (or, with `violate=i`, all but relation i); `render` draws the
layout as labelled icons over a scene background; `check_layout` reads back, from the boxes
alone, which relations hold.
"""

from .check import check_layout
from .draw import Rendering, image_encode, layout_draw, render
from .geometry import Box
from .layout import Layout, PlacedObject, layout_scene
from .plan import LayoutError
from .spec import RELATIONS, SpecError

__all__ = [
    "RELATIONS",
    "Box",
    "Layout",
    "LayoutError",
    "PlacedObject",
    "Rendering",
    "SpecError",
    "check_layout",
    "image_encode",
    "layout_draw",
    "layout_scene",
    "render",
]
