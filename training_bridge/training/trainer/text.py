"""Words for the built-in text encoder: lower-cased word tokens and a vocabulary of the training
captions (stored in the checkpoint, so scoring tokenises exactly as training did). No torch."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def vocabulary_build(captions: Iterable[str], *, max_size: int = 20_000) -> list[str]:
    """PAD and UNK, then the words by falling count (ties alphabetically): deterministic."""
    counts = Counter(word for caption in captions for word in words(caption))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [PAD, UNK, *(word for word, _ in ranked[: max_size - 2])]


class WordTokenizer:
    def __init__(self, vocabulary: list[str], max_length: int) -> None:
        self.vocabulary = vocabulary
        self.index = {word: i for i, word in enumerate(vocabulary)}
        self.max_length = max_length

    def encode(self, text: str) -> list[int]:
        unk = self.index[UNK]
        ids = [self.index.get(word, unk) for word in words(text)][: self.max_length]
        return ids or [unk]
