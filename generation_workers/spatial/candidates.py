"""Candidate prompts before deduplication, and the attribute and count draws they share.

A candidate is ``(objects, relations, scene, template)`` with objects as
``(name, count, size, color)`` tuples and relations as ``(subject, relation, references)`` by
object position: the cheap form the builder renders, perturbs and serialises.
"""

from __future__ import annotations

from .builder_spec import BuildSpec
from .perturbations import LeanRelation
from .templates import ObjectTuple, Template

Candidate = tuple[list[ObjectTuple], list[LeanRelation], str | None, Template]


class AttributeDraws:
    """Colour, size and count of an object from 64 random bits (10 bits per decision)."""

    __slots__ = ("names", "colors", "sizes", "max_count", "thresholds")

    def __init__(self, build: BuildSpec) -> None:
        self.names = build.vocabulary.names
        self.colors = build.vocabulary.colors
        self.sizes = build.vocabulary.sizes
        self.max_count = build.max_count
        self.thresholds = tuple(
            round(p * 1024)
            for p in (build.color_probability, build.size_probability, build.count_probability)
        )

    @property
    def varied(self) -> bool:
        """False when every object is drawn bare (no colour, size or count)."""
        return any(self.thresholds)

    def object(self, name_index: int, bits: int) -> ObjectTuple:
        color_t, size_t, count_t = self.thresholds
        color = self.colors[(bits >> 10) % len(self.colors)] if bits & 1023 < color_t else None
        size = self.sizes[(bits >> 30) % len(self.sizes)] if (bits >> 20) & 1023 < size_t else None
        count = 1
        if (bits >> 40) & 1023 < count_t:
            count = 2 + (bits >> 50) % (self.max_count - 1)
        return (self.names[name_index], count, size, color)


def excluded_index_pairs(build: BuildSpec) -> frozenset[tuple[int, int]]:
    """The spec's excluded pairs as (low, high) positions in the vocabulary."""
    position = {name: index for index, name in enumerate(build.vocabulary.names)}
    return frozenset(
        (min(a, b), max(a, b))
        for a, b in (tuple(position[name] for name in pair) for pair in build.excluded_pairs)
    )
