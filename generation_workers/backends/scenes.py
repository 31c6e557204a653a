"""The procedural backend: the `procedural` renderer (Pillow only) behind the backend interface.

Each image comes with the layout it was drawn from and, for every relation of the prompt,
whether the layout satisfies it: the spatial truth that makes gold pairs and CPU tests possible.
`extra_args` may hold `violate`: a relation index, or "random" (chosen by the seed), to draw
every relation but that one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from . import procedural
from .base import BackendConfig, ConfigUnusable, RenderedItem, RenderItem
from .fingerprint import procedural_revision

EXTRA_ARGS = frozenset({"violate"})


@cache
def _revision() -> str:
    return procedural_revision()


def violate_problem(value: Any) -> str | None:
    """Why `value` is not a valid `violate` setting, or None."""
    if value is None or value == "random":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 'violate must be a relation index (0, 1, ...) or "random"'
    return None


class ProceduralBackend:
    def __init__(self, config: BackendConfig) -> None:
        unknown = set(config.extra_args) - EXTRA_ARGS
        if unknown:
            raise ConfigUnusable(f"the procedural backend takes no {', '.join(sorted(unknown))}")
        problem = violate_problem(config.extra_args.get("violate"))
        if problem:
            raise ConfigUnusable(problem)
        self.config = config
        self.violate = config.extra_args.get("violate")

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "procedural",
            "renderer_revision": _revision(),
            "width": self.config.width,
            "height": self.config.height,
            "violate": self.violate,
        }

    def _violated_index(self, item: RenderItem) -> int | None:
        if self.violate is None:
            return None
        relations = item.structure.get("relations") or []
        if not relations:
            raise procedural.SpecError("the prompt has no relation to violate")
        if self.violate == "random":
            return random.Random(item.seed).randrange(len(relations))
        if self.violate >= len(relations):
            raise procedural.SpecError(
                f"violate={self.violate}, but the prompt has {len(relations)} relations"
            )
        return self.violate

    def _render_one(self, item: RenderItem) -> RenderedItem:
        started = time.perf_counter()
        try:
            violated = self._violated_index(item)
            rendering = procedural.render(
                item.structure,
                seed=item.seed,
                width=self.config.width,
                height=self.config.height,
                violate=violated,
            )
            holds = procedural.check_layout(item.structure, rendering.layout)
        except (procedural.SpecError, procedural.LayoutError) as exc:
            return RenderedItem(
                candidate_id=item.candidate_id,
                image=None,
                error=f"the procedural renderer cannot draw this prompt: {exc}",
            )
        layout = {
            placed.id: [round(placed.box.x0), round(placed.box.y0), round(placed.box.x1),
                        round(placed.box.y1)]
            for placed in rendering.layout.objects
        }  # fmt: skip
        return RenderedItem(
            candidate_id=item.candidate_id,
            image=rendering.image,
            metadata={
                "seed": item.seed,
                "violated": violated,
                "relations_hold": [holds[index] for index in sorted(holds)],
                "layout": layout,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    def render(self, items: Sequence[RenderItem]) -> list[RenderedItem]:
        return [self._render_one(item) for item in items]


def backend_for(config: BackendConfig) -> ProceduralBackend:
    return ProceduralBackend(config)


def config_check(config: BackendConfig) -> str:
    backend = ProceduralBackend(config)
    probe = {
        "objects": [
            {"id": "o1", "name": "cat", "count": 1, "attributes": {}},
            {"id": "o2", "name": "dog", "count": 1, "attributes": {}},
        ],
        "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}],
        "scene": None,
    }
    started = time.perf_counter()
    rendered = backend.render([RenderItem(candidate_id=0, text="", structure=probe, seed=0)])[0]
    if rendered.image is None:
        raise ConfigUnusable(rendered.error)
    seconds = time.perf_counter() - started
    return (
        f"procedural renderer ready: a {config.width}x{config.height} test scene in {seconds:.2f} s"
    )
