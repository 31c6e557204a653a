"""Training augmentation that keeps a pair's label true: the left-right mirror.

Mirroring both images of a pair left-right turns "a cat to the left of a dog" into a scene of
"a cat to the right of a dog", so the caption is mirrored with them: the words `left` and
`right` (also in `left-hand`, `leftmost`, `leftward(s)`) swap, case kept. Every other spatial
word of the vocabulary (`above`, `below`, `between`, `in front of`, `next to`...) means the
same in the mirrored scene, and the label stays: the mirror of the better image is the better
image of the mirrored caption. A vertical flip is not offered: it would turn "above" into
"below" and draw the renderer's triangles and houses upside down.

Which pairs are mirrored in an epoch is drawn from the run's seed and the epoch, so a run
repeats. No torch here.
"""

from __future__ import annotations

import re

import numpy as np

_SIDE = re.compile(r"\b(left|right)(?=(?:most|wards?|-hand)?\b)", re.IGNORECASE)
_OTHER = {"left": "right", "right": "left"}


def caption_mirror(caption: str) -> str:
    """The caption of the left-right mirrored scene: `left` and `right` swapped, case kept."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(1)
        other = _OTHER[word.lower()]
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(swap, caption)


def mirror_mask(count: int, *, probability: float, seed: int, epoch: int) -> np.ndarray:
    """Which of `count` training pairs are mirrored in `epoch` (bool array), each with
    `probability`; the same seed and epoch give the same mask."""
    if probability <= 0.0 or count == 0:
        return np.zeros(count, dtype=bool)
    rng = np.random.default_rng([seed, epoch, 0x6D69])
    return rng.random(count) < probability
