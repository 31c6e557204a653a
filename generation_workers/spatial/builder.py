"""Building prompt sets from a spec: seeded, streaming, deduplicated, with perturbations.

``build_prompt_set(spec)`` checks the spec eagerly (``PromptSpecError`` before any record) and
returns an iterator of exactly ``spec["size"]`` records. Memory stays flat apart from one
small digest per prompt for deduplication (peak figures for a million prompts: bench/RESULTS.md),
so a prompt set streams into a database writer without being held in memory.

Tiers, interleaved in proportion to their weights:

- ``single``: one relation, rendered with one of ``templates``, sampled without replacement
  from the skeleton space (``single_tier.py``). Without attribute or count variation the
  space is finite and a ``size`` larger than it is rejected up front.
- ``multi`` and ``scene``: 2-3 (resp. 4-16) relations over distinct objects, placed in a
  seeded random layout so that they are consistent by construction (``scene_layouts.py``),
  rendered with ``scene_template``; scene prompts start with "In a <scene>, ".

Texts, perturbed children included, are unique across the set on ``normalize_text`` (an 8-byte
blake2b digest each; a child whose text is taken is dropped). Each record::

    {"index": 0,                             # position in the set
     "text": "a photo of a red cat left of a dog",
     "normalized_text": "a photo of a red cat left of a dog",
     "structure": {...},                     # StructuredPrompt.to_dict() form
     "tier": "single" | "multi" | "scene",
     "template": "geneval",                  # style name, or the custom template text
     "group_key": "cat+dog",                 # sorted distinct object names
     "split": "train",                       # shared by the prompt and its perturbations
     "perturbations": [                      # up to per_prompt; [] when none applies
         {"text": "a photo of a dog left of a red cat", "normalized_text": "...",
          "structure": {...},                # same objects and ids, changed relations
          "lineage": {"type": "swap", "num_perturbations": 1,
                      "changes": [{"op": "swap", "relation_index": 0,
                                   "objects": ["o1", "o2"]}]}}]}

Perturbations differ from their parent and from each other but are not deduplicated against
other records: "a dog left of a cat" can be both a record and another record's swap. The
group key ignores order, so both land in the same split (unless a held-out object or
relation forces one family into the held-out split).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator, Mapping
from typing import Any

from .builder_spec import BuildSpec, parse_build_spec
from .candidates import AttributeDraws, Candidate, excluded_index_pairs
from .errors import PromptSpecError
from .perturbations import LeanRelation, lineage, perturb_family_lean
from .scene_layouts import layout_candidates
from .single_tier import single_candidates, single_capacity
from .splits import group_key_for
from .templates import ObjectTuple, Renderer, normalize_text

# Consecutive duplicate draws after which a tier is taken to be exhausted.
_MISS_LIMIT = 100_000
_IDS = tuple(f"o{number}" for number in range(1, 64))


def build_prompt_set(spec: Mapping[str, Any] | BuildSpec) -> Iterator[dict[str, Any]]:
    """The records of a prompt set (see the module docstring); the spec is checked first."""
    build = spec if isinstance(spec, BuildSpec) else parse_build_spec(spec)
    targets = tier_targets(build)
    capacity = single_capacity(build)
    if capacity is not None and targets.get("single", 0) > capacity:
        raise PromptSpecError(
            "size",
            build.size,
            f"the single tier asks for {targets['single']} prompts but only {capacity} distinct"
            " ones exist; add templates, objects, relations, attributes or counts, or lower it",
        )
    return _Builder(build).records(targets)


def tier_targets(build: BuildSpec) -> dict[str, int]:
    """Prompts per tier: ``size`` split by weight, largest remainders rounded up."""
    total = sum(tier.weight for tier in build.tiers)
    shares = {tier.name: build.size * tier.weight / total for tier in build.tiers}
    targets = {name: int(share) for name, share in shares.items()}
    leftover = build.size - sum(targets.values())
    by_remainder = sorted(shares, key=lambda name: shares[name] - targets[name], reverse=True)
    for name in by_remainder[:leftover]:
        targets[name] += 1
    return targets


class _Builder:
    def __init__(self, build: BuildSpec) -> None:
        self.build = build
        self.renderer = Renderer(build.vocabulary)
        self.perturb_rng = random.Random(f"{build.seed}:perturbations")
        self.policy = build.split_policy
        self._splits: dict[str, str] = {}

    def records(self, targets: dict[str, int]) -> Iterator[dict[str, Any]]:
        draws = AttributeDraws(self.build)
        excluded = excluded_index_pairs(self.build)
        streams: dict[str, Iterator[Candidate]] = {}
        for tier in self.build.tiers:
            if not targets.get(tier.name):
                continue
            if tier.name == "single":
                streams[tier.name] = single_candidates(self.build, draws, excluded)
            else:
                streams[tier.name] = layout_candidates(self.build, tier, draws, excluded)
        seen: set[bytes] = set()
        render = self.renderer.render
        for index, tier_name in enumerate(_schedule(targets)):
            misses = 0
            for candidate in streams[tier_name]:
                objects, relations, scene, template = candidate
                text = render(template, objects, relations, scene)
                normalized = normalize_text(text)
                digest = hashlib.blake2b(normalized.encode(), digest_size=8).digest()
                if digest not in seen:
                    seen.add(digest)
                    break
                misses += 1
                if misses >= _MISS_LIMIT:
                    raise _exhausted(self.build, tier_name, index)
            else:
                raise _exhausted(self.build, tier_name, index)
            record = self._record(index, tier_name, candidate, text, normalized)
            # A child's text may equal another record's (swapping "a cat left of a dog" gives
            # "a dog left of a cat"): texts are unique across the whole set, children included.
            children = []
            for child in record["perturbations"]:
                child_digest = hashlib.blake2b(
                    child["normalized_text"].encode(), digest_size=8
                ).digest()
                if child_digest not in seen:
                    seen.add(child_digest)
                    children.append(child)
            record["perturbations"] = children
            yield record

    def _record(
        self, index: int, tier: str, candidate: Candidate, text: str, normalized: str
    ) -> dict[str, Any]:
        objects, relations, scene, template = candidate
        build = self.build
        structure = _structure(objects, relations, scene)
        children: list[dict[str, Any]] = []
        tracks_relations = bool(self.policy.held_out_relations)
        mentioned = {relation for _, relation, _ in relations} if tracks_relations else set()
        if build.perturbations_per_prompt:
            family = perturb_family_lean(
                objects,
                relations,
                _IDS,
                types=build.perturbation_types,
                count=build.perturbations_per_prompt,
                rng=self.perturb_rng,
                allowed=build.replace_with,
                max_changes=build.max_changes,
            )
            for kind, changed, changes in family:
                child_text = self.renderer.render(template, objects, changed, scene)
                if tracks_relations:
                    mentioned.update(relation for _, relation, _ in changed)
                children.append(
                    {
                        "text": child_text,
                        "normalized_text": normalize_text(child_text),
                        "structure": {
                            "objects": [
                                {**obj, "attributes": dict(obj["attributes"])}
                                for obj in structure["objects"]
                            ],
                            "relations": _relation_dicts(changed),
                            "scene": scene,
                        },
                        "lineage": lineage(kind, changes),
                    }
                )
        names = [obj[0] for obj in objects]
        group = group_key_for(names)
        return {
            "index": index,
            "text": text,
            "normalized_text": normalized,
            "structure": structure,
            "tier": tier,
            "template": template.name,
            "group_key": group,
            "split": self._split(group, names, mentioned),
            "perturbations": children,
        }

    def _split(self, group: str, names: list[str], relations: set[str]) -> str:
        policy = self.policy
        if policy.held_out_objects or policy.held_out_relations:
            return policy.split_for(group, objects=names, relations=relations)
        split = self._splits.get(group)
        if split is None:
            split = policy.split_for(group)
            if len(self._splits) < 200_000:  # one-relation groups repeat; scene groups rarely
                self._splits[group] = split
        return split


def _schedule(targets: dict[str, int]) -> Iterator[str]:
    """Tiers interleaved smoothly in proportion to their targets (weighted round robin)."""
    names = [name for name, target in targets.items() if target > 0]
    weights = [targets[name] for name in names]
    if len(names) == 1:
        yield from itertools.repeat(names[0], weights[0])
        return
    total = sum(weights)
    credit = [0] * len(names)
    tiers = range(len(names))
    for _ in range(total):
        best = 0
        for tier in tiers:
            credit[tier] += weights[tier]
            if credit[tier] > credit[best]:
                best = tier
        credit[best] -= total
        yield names[best]


def _structure(
    objects: list[ObjectTuple], relations: list[LeanRelation], scene: str | None
) -> dict[str, Any]:
    """The ``StructuredPrompt.to_dict()`` form, built directly (this runs once per record)."""
    object_dicts = []
    for position, (name, count, size, color) in enumerate(objects):
        attributes = {}
        if color is not None:
            attributes["color"] = color
        if size is not None:
            attributes["size"] = size
        object_dicts.append(
            {"id": _IDS[position], "name": name, "count": count, "attributes": attributes}
        )
    return {"objects": object_dicts, "relations": _relation_dicts(relations), "scene": scene}


def _relation_dicts(relations: list[LeanRelation]) -> list[dict[str, Any]]:
    return [
        {"subject": _IDS[s], "relation": r, "objects": [_IDS[ref] for ref in refs]}
        for s, r, refs in relations
    ]


def _exhausted(build: BuildSpec, tier: str, produced: int) -> PromptSpecError:
    return PromptSpecError(
        "size",
        build.size,
        f"ran out of distinct {tier!r} prompts after {produced} records; widen the spec "
        "(objects, templates, relations, attributes, counts) or lower the size",
    )
