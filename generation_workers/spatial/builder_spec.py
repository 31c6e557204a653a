"""The prompt-set build spec: reading and checking it (JSON, YAML or a dict).

Every key but ``size`` is optional::

    {
      "size": 100000,                          # prompts to produce (required)
      "seed": 7,                               # int or string; same seed -> same prompts
      "vocabulary": "coco",                    # "coco" | "compbench" | ["cat", ...] | {...}
      "templates": ["geneval", "compbench", "a picture of {A} {rel} {B}"],  # 1-relation tier
      "scene_template": "scene",               # sentence template for 2+ relations
      "relations": ["left_of", "right_of", "above", "below"],   # canonical ids
      "attributes": {"colors": ["red", "blue"], "sizes": ["small", "large"],
                     "probability": {"color": 0.3, "size": 0.1}},   # or one number
      "counts": {"max": 4, "probability": 0.1},   # P(count > 1), count uniform in 2..max
      "tiers": {"single": 0.8,                 # weight, or an object:
                "multi": {"weight": 0.15, "min_relations": 2, "max_relations": 3},
                "scene": {"weight": 0.05, "min_relations": 4, "max_relations": 16,
                          "scenes": ["kitchen", "living room"]}},
      "exclusions": {"objects": ["person"], "categories": ["animal", "food"],
                     "pairs": [["cat", "dog"]]},   # pairs never share a relation
      "perturbations": {"types": ["swap", "replace", "flip", "multi"], "per_prompt": 1,
                        "max_changes": 3, "replace_with": null},
      "held_out": {"ratios": {"train": 0.8, "val": 0.1, "test": 0.1}, "seed": 0,
                   "objects": ["zebra"], "relations": ["between"], "split": "test"}
    }

Defaults: vocabulary ``coco``; templates ``["geneval"]``; scene_template ``scene``; all 15
relations; the vocabulary's colours and sizes with probability 0.25 (colour) and 0.1 (size);
counts up to 4 with probability 0.1; tiers 0.8 / 0.15 / 0.05 (multi 2-3 relations, scene 4-16
in one of 15 rooms and places); seed 0; no exclusions (an object is never related to itself);
all perturbation types, one child per prompt, up to 3 changes; splits 0.8 / 0.1 / 0.1 with
split seed 0 and nothing held out.

Errors are ``PromptSpecError`` naming the field: ``size``, ``relations[1]``, ``templates[0]``,
``tiers.scene.max_relations``, ``exclusions.pairs[0][1]`` ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PromptSpecError
from .inflection import MAX_COUNT
from .perturbations import PERTURBATION_TYPES
from .relations import RELATION_IDS, RELATIONS, relation_spec
from .splits import HELD_OUT_KEYS, SplitPolicy, split_policy_from_spec
from .templates import Template, get_template
from .tier_spec import TierSpec, tiers_from_spec
from .vocabulary import Vocabulary, check_attribute_words, vocabulary_from_spec

_TOP_KEYS = frozenset(
    {
        "size",
        "seed",
        "vocabulary",
        "templates",
        "scene_template",
        "relations",
        "attributes",
        "counts",
        "tiers",
        "exclusions",
        "perturbations",
        "held_out",
    }
)


@dataclass(frozen=True)
class BuildSpec:
    """A checked spec; ``vocabulary`` already has exclusions and attribute words applied."""

    size: int
    seed: int | str
    vocabulary: Vocabulary
    templates: tuple[Template, ...]
    scene_template: Template
    relations: tuple[str, ...]
    color_probability: float
    size_probability: float
    count_probability: float
    max_count: int
    tiers: tuple[TierSpec, ...]
    excluded_pairs: frozenset[frozenset[str]]
    perturbation_types: tuple[str, ...]
    perturbations_per_prompt: int
    max_changes: int
    replace_with: tuple[str, ...] | None
    split_policy: SplitPolicy


def _section(spec: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any]:
    value = spec.get(key, {})
    if not isinstance(value, Mapping):
        raise PromptSpecError(key, value, "must be an object")
    for name in value:
        if name not in allowed:
            raise PromptSpecError(f"{key}.{name}", value[name], "unknown key")
    return value


def _integer(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PromptSpecError(field, value, f"must be an integer from {low} to {high}")
    return value


def _probability(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PromptSpecError(field, value, "must be a number from 0 to 1")
    return float(value)


def _list(value: Any, field: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise PromptSpecError(field, value, "must be a list")
    return list(value)


def _relations(value: Any, field: str) -> tuple[str, ...]:
    relations: list[str] = []
    for index, item in enumerate(_list(value, field)):
        try:
            relation_spec(item)
        except PromptSpecError as error:
            raise PromptSpecError(f"{field}[{index}]", item, error.message) from None
        if item in relations:
            raise PromptSpecError(f"{field}[{index}]", item, f"{item!r} is listed twice")
        relations.append(item)
    return tuple(relations)


def _names(value: Any, field: str, vocabulary: Vocabulary) -> list[str]:
    names = _list(value, field)
    for index, name in enumerate(names):
        if name not in vocabulary:
            raise PromptSpecError(
                f"{field}[{index}]", name, f"unknown object {name!r} in {vocabulary.name}"
            )
    return names


def _vocabulary(spec: Mapping[str, Any]) -> tuple[Vocabulary, frozenset[frozenset[str]]]:
    vocabulary = vocabulary_from_spec(spec.get("vocabulary", "coco"))
    exclusions = _section(spec, "exclusions", {"objects", "categories", "pairs"})
    dropped = _names(exclusions.get("objects", []), "exclusions.objects", vocabulary)
    categories = exclusions.get("categories")
    if categories is not None:
        known = vocabulary.categories()
        for index, category in enumerate(_list(categories, "exclusions.categories")):
            if category not in known:
                raise PromptSpecError(
                    f"exclusions.categories[{index}]",
                    category,
                    f"unknown category {category!r} (known: {', '.join(known) or 'none'})",
                )
    pairs: set[frozenset[str]] = set()
    for index, pair in enumerate(_list(exclusions.get("pairs", []), "exclusions.pairs")):
        field = f"exclusions.pairs[{index}]"
        names = _names(pair, field, vocabulary)
        if len(names) != 2 or names[0] == names[1]:
            raise PromptSpecError(field, pair, "must be two different object names")
        pairs.add(frozenset(names))
    restricted = vocabulary.restricted(categories=categories, exclude=dropped)
    if len(restricted) < 2:
        raise PromptSpecError("exclusions", dict(exclusions), "leaves fewer than two objects")
    return restricted, frozenset(pairs)


def _attributes(spec: Mapping[str, Any], vocabulary: Vocabulary) -> tuple[Vocabulary, float, float]:
    section = _section(spec, "attributes", {"colors", "sizes", "probability"})
    colors = tuple(_list(section.get("colors", vocabulary.colors), "attributes.colors"))
    sizes = tuple(_list(section.get("sizes", vocabulary.sizes), "attributes.sizes"))
    check_attribute_words(colors=colors, sizes=sizes, field_name="attributes")
    probability = section.get("probability", {"color": 0.25, "size": 0.1})
    if isinstance(probability, Mapping):
        for key in probability:
            if key not in ("color", "size"):
                raise PromptSpecError(
                    f"attributes.probability.{key}", probability[key], "unknown key"
                )
        color_p = _probability(probability.get("color", 0.0), "attributes.probability.color")
        size_p = _probability(probability.get("size", 0.0), "attributes.probability.size")
    else:
        color_p = size_p = _probability(probability, "attributes.probability")
    return (
        vocabulary.with_attributes(colors=colors, sizes=sizes),
        color_p if colors else 0.0,
        size_p if sizes else 0.0,
    )


def _templates(spec: Mapping[str, Any], relations: tuple[str, ...]) -> tuple[Template, ...]:
    raw = spec.get("templates", ["geneval"])
    if isinstance(raw, str):
        raw = [raw]
    items = _list(raw, "templates")
    if not items:
        raise PromptSpecError("templates", raw, "needs at least one template")
    templates: list[Template] = []
    for index, item in enumerate(items):
        field = f"templates[{index}]"
        if not isinstance(item, str):
            raise PromptSpecError(field, item, "must be a style name or a template string")
        template = get_template(item, field_name=field)
        if template.has_c and any(RELATIONS[r].arity == 2 for r in relations):
            raise PromptSpecError(field, item, "a template with {C} renders only 'between'")
        if template.name in (t.name for t in templates):
            raise PromptSpecError(field, item, "is listed twice")
        templates.append(template)
    return tuple(templates)


def _perturbations(
    spec: Mapping[str, Any],
) -> tuple[tuple[str, ...], int, int, tuple[str, ...] | None]:
    section = _section(
        spec, "perturbations", {"types", "per_prompt", "max_changes", "replace_with"}
    )
    types = _list(section.get("types", list(PERTURBATION_TYPES)), "perturbations.types")
    for index, kind in enumerate(types):
        if kind not in PERTURBATION_TYPES or types.index(kind) != index:
            raise PromptSpecError(
                f"perturbations.types[{index}]",
                kind,
                f"unknown or repeated type (known: {', '.join(PERTURBATION_TYPES)})",
            )
    per_prompt = _integer(section.get("per_prompt", 1), "perturbations.per_prompt", low=0, high=8)
    max_changes = _integer(
        section.get("max_changes", 3), "perturbations.max_changes", low=2, high=3
    )
    replace_with = section.get("replace_with")
    if replace_with is not None:
        replace_with = _relations(replace_with, "perturbations.replace_with")
    return tuple(types), per_prompt, max_changes, replace_with


def parse_build_spec(spec: Any) -> BuildSpec:
    """Check a spec dict (see the module docstring) and fill in the defaults."""
    if not isinstance(spec, Mapping):
        raise PromptSpecError("spec", spec, "must be an object")
    for key in spec:
        if key not in _TOP_KEYS:
            raise PromptSpecError(str(key), spec[key], "unknown key")
    if "size" not in spec:
        raise PromptSpecError("size", None, "is required")
    size = _integer(spec["size"], "size", low=1, high=100_000_000)
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise PromptSpecError("seed", seed, "must be an integer or a string")
    vocabulary, excluded_pairs = _vocabulary(spec)
    vocabulary, color_p, size_p = _attributes(spec, vocabulary)
    relations = _relations(spec.get("relations", list(RELATION_IDS)), "relations")
    if not relations:
        raise PromptSpecError("relations", [], "needs at least one relation")
    if "between" in relations and len(vocabulary) < 3:
        index = relations.index("between")
        raise PromptSpecError(f"relations[{index}]", "between", "'between' needs three objects")
    templates = _templates(spec, relations)
    tiers = tiers_from_spec(spec.get("tiers"), object_count=len(vocabulary), relations=relations)
    scene_template = get_template(spec.get("scene_template", "scene"), field_name="scene_template")
    if not scene_template.is_sentence or scene_template.has_c:
        raise PromptSpecError(
            "scene_template",
            spec.get("scene_template"),
            "must be a sentence template (ending in '.') without {C}",
        )
    counts = _section(spec, "counts", {"max", "probability"})
    max_count = _integer(counts.get("max", 4), "counts.max", low=1, high=MAX_COUNT)
    count_p = _probability(counts.get("probability", 0.1), "counts.probability")
    types, per_prompt, max_changes, replace_with = _perturbations(spec)
    return BuildSpec(
        size=size,
        seed=seed,
        vocabulary=vocabulary,
        templates=templates,
        scene_template=scene_template,
        relations=relations,
        color_probability=color_p,
        size_probability=size_p,
        count_probability=count_p if max_count > 1 else 0.0,
        max_count=max_count,
        tiers=tiers,
        excluded_pairs=excluded_pairs,
        perturbation_types=types,
        perturbations_per_prompt=per_prompt,
        max_changes=max_changes,
        replace_with=replace_with,
        split_policy=split_policy_from_spec(
            _section(spec, "held_out", set(HELD_OUT_KEYS)), vocabulary=vocabulary
        ),
    )


def load_build_spec(path: str | Path) -> BuildSpec:
    """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file and check it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only spec files need PyYAML

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise PromptSpecError("spec", str(path), f"is not valid YAML: {error}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PromptSpecError("spec", str(path), f"is not valid JSON: {error}") from None
    return parse_build_spec(data)
