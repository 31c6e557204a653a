"""Difficulty tiers: names, defaults and the ``tiers`` section of a build spec.

``single`` has one relation; ``multi`` 2-3 relations; ``scene`` 4-16 relations and a scene
name ("In a kitchen, ..."). Default weights 0.8 / 0.15 / 0.05. A tier is given by its weight
or by an object::

    "tiers": {"single": 0.7,
              "multi": {"weight": 0.2, "min_relations": 2, "max_relations": 3},
              "scene": {"weight": 0.1, "min_relations": 4, "max_relations": 16,
                        "scenes": ["kitchen", "living room"]}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PromptSpecError
from .relations import RELATIONS
from .vocabulary import check_name

MAX_SCENE_RELATIONS = 16
TIER_NAMES: tuple[str, ...] = ("single", "multi", "scene")
DEFAULT_SCENES: tuple[str, ...] = (
    "kitchen",
    "living room",
    "bedroom",
    "bathroom",
    "dining room",
    "classroom",
    "office",
    "library",
    "garage",
    "garden",
    "park",
    "street",
    "beach",
    "cafe",
    "playground",
)
_DEFAULTS: dict[str, dict[str, Any]] = {
    # Template sets are mostly one-relation prompts; long scenes usually come from imports.
    "single": {"weight": 0.8, "min_relations": 1, "max_relations": 1},
    "multi": {"weight": 0.15, "min_relations": 2, "max_relations": 3},
    "scene": {"weight": 0.05, "min_relations": 4, "max_relations": MAX_SCENE_RELATIONS},
}


@dataclass(frozen=True)
class TierSpec:
    name: str
    weight: float
    min_relations: int
    max_relations: int
    scenes: tuple[str, ...] = ()


def relation_capacity(objects: int, relations: tuple[str, ...]) -> int:
    """How many relations fit in one prompt: one binary relation per pair of objects, one
    ``between`` per triple."""
    pairs = objects * (objects - 1) // 2 if any(RELATIONS[r].arity == 2 for r in relations) else 0
    triples = objects * (objects - 1) * (objects - 2) // 6 if "between" in relations else 0
    return pairs + triples


def _relation_count(value: Any, field: str, low: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= MAX_SCENE_RELATIONS
    ):
        raise PromptSpecError(
            field, value, f"must be an integer from {low} to {MAX_SCENE_RELATIONS}"
        )
    return value


def _tier(name: str, value: Any, object_count: int, relations: tuple[str, ...]) -> TierSpec:
    field = f"tiers.{name}"
    if name not in TIER_NAMES:
        raise PromptSpecError(field, value, f"unknown tier (known: {', '.join(TIER_NAMES)})")
    settings = dict(_DEFAULTS[name])
    if isinstance(value, Mapping):
        allowed = {"weight"} if name == "single" else {"weight", "min_relations", "max_relations"}
        if name == "scene":
            allowed.add("scenes")
        for key in value:
            if key not in allowed:
                raise PromptSpecError(f"{field}.{key}", value[key], "unknown key")
        settings.update(value)
    else:
        settings["weight"] = value
    weight = settings["weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        where = f"{field}.weight" if isinstance(value, Mapping) else field
        raise PromptSpecError(where, weight, "must be a number >= 0")
    low = _relation_count(settings["min_relations"], f"{field}.min_relations", 1)
    high = _relation_count(settings["max_relations"], f"{field}.max_relations", low)
    if weight > 0 and high > relation_capacity(object_count, relations):
        raise PromptSpecError(
            f"{field}.max_relations",
            high,
            f"{high} relations do not fit among {object_count} objects",
        )
    scenes: tuple[str, ...] = ()
    if name == "scene":
        raw_scenes = settings.get("scenes", DEFAULT_SCENES)
        if (
            isinstance(raw_scenes, str)
            or not isinstance(raw_scenes, list | tuple)
            or not raw_scenes
        ):
            raise PromptSpecError(f"{field}.scenes", raw_scenes, "must be a non-empty list")
        scenes = tuple(
            check_name(scene, f"{field}.scenes[{index}]") for index, scene in enumerate(raw_scenes)
        )
    return TierSpec(name, float(weight), low, high, scenes)


def tiers_from_spec(
    raw: Any, *, object_count: int, relations: tuple[str, ...]
) -> tuple[TierSpec, ...]:
    """The checked tiers of a spec (the default mix when ``raw`` is None)."""
    if raw is None:
        raw = {name: defaults["weight"] for name, defaults in _DEFAULTS.items()}
    if not isinstance(raw, Mapping) or not raw:
        raise PromptSpecError("tiers", raw, "must map tier names to weights")
    tiers = tuple(_tier(name, value, object_count, relations) for name, value in raw.items())
    if sum(tier.weight for tier in tiers) <= 0:
        raise PromptSpecError("tiers", raw, "needs a tier with a positive weight")
    return tiers
