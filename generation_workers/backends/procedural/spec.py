"""The structured prompt a procedural render starts from, parsed into checked dataclasses.

The shape is fixed by the prompt engine::

    {"objects": [{"id": "o1", "name": "cat", "count": 1,
                  "attributes": {"color": "red", "size": "small"}}, ...],
     "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}, ...],
     "scene": "kitchen" or None}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .palette import color_rgb

RELATIONS: tuple[str, ...] = (
    "left_of",
    "right_of",
    "above",
    "below",
    "in_front_of",
    "behind",
    "on_top_of",
    "under",
    "inside",
    "next_to",
    "near",
    "between",
    "centered_on",
    "aligned_with_edge_of",
    "against",
)
TERNARY_RELATIONS = frozenset({"between"})
SIZES: tuple[str, ...] = ("small", "medium", "large")
MAX_COUNT = 12


class SpecError(ValueError):
    """The prompt dict is malformed: unknown relation, missing id, bad count, ..."""


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    id: str
    name: str
    count: int
    color: str | None
    size: str


@dataclass(frozen=True, slots=True)
class RelationSpec:
    index: int
    subject: str
    relation: str
    objects: tuple[str, ...]

    def describe(self) -> str:
        return f"#{self.index} ({self.subject} {self.relation} {' and '.join(self.objects)})"


@dataclass(frozen=True, slots=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]
    relations: tuple[RelationSpec, ...]
    scene: str | None


def _object_parse(raw: Any, position: int) -> ObjectSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(f"objects[{position}] is not a mapping")
    object_id = raw.get("id")
    name = raw.get("name")
    if not isinstance(object_id, str) or not object_id:
        raise SpecError(f"objects[{position}] has no string id")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"object {object_id!r} has no name")
    count = raw.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise SpecError(f"object {object_id!r}: count must be an int in 1..{MAX_COUNT}")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise SpecError(f"object {object_id!r}: attributes is not a mapping")
    color = attributes.get("color")
    if color is not None and (not isinstance(color, str) or color_rgb(color) is None):
        raise SpecError(f"object {object_id!r}: unknown color {color!r}")
    size = attributes.get("size") or "medium"
    if size not in SIZES:
        raise SpecError(f"object {object_id!r}: size must be one of {', '.join(SIZES)}")
    return ObjectSpec(id=object_id, name=name.strip(), count=count, color=color, size=size)


def _relation_parse(raw: Any, index: int, ids: set[str]) -> RelationSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(f"relations[{index}] is not a mapping")
    relation = raw.get("relation")
    if relation not in RELATIONS:
        raise SpecError(f"relations[{index}]: unknown relation {relation!r}")
    subject = raw.get("subject")
    objects = raw.get("objects")
    if not isinstance(objects, list | tuple) or not all(isinstance(o, str) for o in objects):
        raise SpecError(f"relations[{index}]: objects must be a list of ids")
    arity = 2 if relation in TERNARY_RELATIONS else 1
    if len(objects) != arity:
        raise SpecError(f"relations[{index}]: {relation} takes {arity} object(s)")
    for member in (subject, *objects):
        if member not in ids:
            raise SpecError(f"relations[{index}]: unknown object id {member!r}")
    if len({subject, *objects}) != 1 + arity:
        raise SpecError(f"relations[{index}]: an object cannot be related to itself")
    return RelationSpec(index=index, subject=subject, relation=relation, objects=tuple(objects))


def scene_spec_parse(spec: Mapping[str, Any]) -> SceneSpec:
    """Check a prompt dict and return it as dataclasses; raise SpecError naming the problem."""
    if not isinstance(spec, Mapping):
        raise SpecError("the spec is not a mapping")
    raw_objects = spec.get("objects")
    if not isinstance(raw_objects, list | tuple) or not raw_objects:
        raise SpecError("the spec needs a non-empty list of objects")
    objects = tuple(_object_parse(raw, i) for i, raw in enumerate(raw_objects))
    ids = {o.id for o in objects}
    if len(ids) != len(objects):
        raise SpecError("object ids are not unique")
    raw_relations = spec.get("relations") or []
    if not isinstance(raw_relations, list | tuple):
        raise SpecError("relations is not a list")
    relations = tuple(_relation_parse(raw, i, ids) for i, raw in enumerate(raw_relations))
    scene = spec.get("scene")
    if scene is not None and not isinstance(scene, str):
        raise SpecError("scene must be a string or null")
    return SceneSpec(objects=objects, relations=relations, scene=scene or None)
