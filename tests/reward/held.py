"""A serving process's batching thread held busy: the real condition of a long forward pass
(the engine has images in flight), made with a stand-in pass that waits for a gate instead of
a slow model, so that a test decides when the engine is busy and when it is free again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from training_bridge.reward_models.services.scoring import scoring_engine


class GatedPass:
    """Stands for a loaded model: its forward pass returns only once `gate` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def forward(self, captions, arrays, *, batch_size):
        self.entered.set()
        self.gate.wait(60)
        return list(arrays)


@contextmanager
def engine_held(images: int = 1) -> Iterator[GatedPass]:
    """This process's engine running a pass of `images` images until the gate is opened (at the
    latest when the block ends)."""
    engine = scoring_engine()
    gated = GatedPass()
    thread = threading.Thread(
        target=engine.batcher.submit, args=(gated, ["p"] * images, [None] * images, [0] * images)
    )
    thread.start()
    assert gated.entered.wait(30), "the batching thread never took the held pass"
    try:
        yield gated
    finally:
        gated.gate.set()
        thread.join(30)
