"""A stand-in for a GPU, for bench/scale/fanout.py: sleeps a fixed render time per image.

Selected the way a real backend is: a GeneratorConfig whose `backend` is the name this module
is registered under in GENERATION_EXTRA_BACKENDS (fanout.py: `simulated`), with
`extra_args={"render_seconds": t}`. A batch of n images sleeps n * t (one forward pass per
batch, as the diffusers backend renders). Each image is an 8x8 RGB picture of the SHA-256 of
its prompt and seed: small, valid, different for every candidate and the same bytes when a
candidate is rendered again (so a re-render after a crash lands on the same content key, as
a deterministic model's does).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from generation_workers.backends.base import BackendConfig, ConfigUnusable, RenderedItem, RenderItem

SIDE = 8


class SimulatedBackend:
    def __init__(self, config: BackendConfig) -> None:
        seconds = config.extra_args.get("render_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ConfigUnusable("the simulated backend needs extra_args.render_seconds >= 0")
        self.render_seconds = float(seconds)

    def describe(self) -> dict[str, Any]:
        return {"backend": "simulated", "render_seconds": self.render_seconds}

    def render(self, items: Sequence[RenderItem]) -> list[RenderedItem]:
        time.sleep(self.render_seconds * len(items))
        return [
            RenderedItem(
                candidate_id=item.candidate_id,
                image=_picture(f"{item.text}\0{item.seed}"),
                metadata={"seed": item.seed, "duration_ms": self.render_seconds * 1000},
            )
            for item in items
        ]


def _picture(key: str) -> Image.Image:
    digest = hashlib.sha256(key.encode()).digest()  # 32 bytes; 8x8 RGB takes 192
    return Image.frombytes("RGB", (SIDE, SIDE), digest * (SIDE * SIDE * 3 // len(digest)))


def backend_for(config: BackendConfig) -> SimulatedBackend:
    return SimulatedBackend(config)


def config_check(config: BackendConfig) -> str:
    SimulatedBackend(config)
    return "simulated backend: no model, sleeps render_seconds per image"
