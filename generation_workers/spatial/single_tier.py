"""One-relation prompts: a seeded walk without replacement through the skeleton space.

For each relation the skeletons (template x ordered object pair, or for ``between`` a middle
object and two ends) are indexed ``0..space-1`` and visited in the order of a
``SeededPermutation``; relations take turns, so each is equally frequent. Attributes and
counts come from a keyed hash of the skeleton index. When a relation's skeletons are used up,
the walk restarts with a new permutation and new attribute draws (unless nothing is drawn,
in which case the space is finite and the stream ends).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from .builder_spec import BuildSpec
from .candidates import AttributeDraws, Candidate
from .perturbations import LeanRelation
from .relations import RELATIONS
from .sampling import SeededPermutation, derive_key, mix64


def single_capacity(build: BuildSpec) -> int | None:
    """Distinct one-relation prompts, or None when attribute draws make it effectively open."""
    if build.color_probability or build.size_probability or build.count_probability:
        return None
    n = len(build.vocabulary)
    excluded = 2 * len(build.excluded_pairs)
    skeletons = 0
    for relation in build.relations:
        if RELATIONS[relation].arity == 3:
            skeletons += n * (n - 1) * (n - 2) // 2
        else:
            skeletons += n * (n - 1) - excluded
    return skeletons * len(build.templates)


def single_candidates(
    build: BuildSpec, draws: AttributeDraws, excluded: frozenset[tuple[int, int]]
) -> Iterator[Candidate]:
    """Candidates for the single tier, relations in turn, until every relation runs out."""
    streams = [_relation_stream(build, relation, draws, excluded) for relation in build.relations]
    while streams:
        for stream in list(streams):
            candidate = next(stream, None)
            if candidate is None:
                streams.remove(stream)
            else:
                yield candidate


def _relation_stream(
    build: BuildSpec, relation: str, draws: AttributeDraws, excluded: frozenset[tuple[int, int]]
) -> Iterator[Candidate]:
    templates = build.templates
    n, t = len(build.vocabulary), len(templates)
    ternary = RELATIONS[relation].arity == 3
    space = t * (n * (n - 1) * (n - 2) if ternary else n * (n - 1))
    lean: list[LeanRelation] = [(0, relation, (1, 2) if ternary else (1,))]
    draw = draws.object
    for round_ in itertools.count():
        permutation = SeededPermutation(space, build.seed, "single", relation, round_)
        key = derive_key(build.seed, "decoration", relation, round_)
        for index in permutation:
            rest, template_index = divmod(index, t)
            if ternary:
                a, rest = divmod(rest, (n - 1) * (n - 2))
                b, c = divmod(rest, n - 2)
                b += b >= a
                low, high = (a, b) if a < b else (b, a)
                c += c >= low  # skip the two objects already taken
                c += c >= high
                if b > c:  # the two ends are unordered: keep one order only
                    continue
                if excluded and (
                    (low, high) in excluded
                    or (min(a, c), max(a, c)) in excluded
                    or (b, c) in excluded
                ):
                    continue
                chosen: tuple[int, ...] = (a, b, c)
            else:
                a, b = divmod(rest, n - 1)
                b += b >= a
                if excluded and ((a, b) if a < b else (b, a)) in excluded:
                    continue
                chosen = (a, b)
            bits = key ^ (index << 2)  # one hash per object slot
            objects = [draw(chosen[0], mix64(bits)), draw(chosen[1], mix64(bits ^ 1))]
            if ternary:
                objects.append(draw(chosen[2], mix64(bits ^ 2)))
            yield objects, lean, None, templates[template_index]
        if not draws.varied:
            return
