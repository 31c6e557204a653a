"""The canonical structured prompt and its validation.

The JSON form other code depends on::

    {"objects": [{"id": "o1", "name": "cat", "count": 1,
                  "attributes": {"color": "red", "size": "small"}}, ...],
     "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}, ...],
     "scene": "kitchen"}            # or None

``from_dict`` checks the shape (types, keys); ``validate`` checks the meaning: known relations
with the right number of objects, no dangling or repeated ids, counts 1..20, attribute words,
every object used by a relation, no two objects described identically, vocabulary membership
when the vocabulary is strict, and no contradictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PromptSpecError
from .validation import prompt_errors
from .vocabulary import Vocabulary

Attributes = tuple[tuple[str, str], ...]


def _attribute_tuple(value: Mapping[str, str] | Attributes) -> Attributes:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(key), str(word)) for key, word in items))


@dataclass(frozen=True, slots=True)
class SpatialObject:
    """One object of a prompt; ``attributes`` may be given as a dict and is stored sorted."""

    id: str
    name: str
    count: int = 1
    attributes: Attributes = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", _attribute_tuple(self.attributes))

    @property
    def color(self) -> str | None:
        return dict(self.attributes).get("color")

    @property
    def size(self) -> str | None:
        return dict(self.attributes).get("size")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "count": self.count,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class Relation:
    """``subject`` stands in ``relation`` to ``objects`` (one id, two for ``between``)."""

    subject: str
    relation: str
    objects: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.objects, tuple):
            object.__setattr__(self, "objects", tuple(self.objects))

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "relation": self.relation, "objects": list(self.objects)}


@dataclass(frozen=True, slots=True)
class StructuredPrompt:
    objects: tuple[SpatialObject, ...]
    relations: tuple[Relation, ...]
    scene: str | None = None

    def __post_init__(self) -> None:
        for name in ("objects", "relations"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [obj.to_dict() for obj in self.objects],
            "relations": [relation.to_dict() for relation in self.relations],
            "scene": self.scene,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StructuredPrompt:
        """Read the JSON form; ``PromptSpecError`` naming the field when the shape is wrong."""
        if not isinstance(data, Mapping):
            raise PromptSpecError("prompt", data, "must be an object")
        _reject_unknown_keys(data, {"objects", "relations", "scene"}, "")
        objects = tuple(
            _object_from_dict(item, f"objects[{index}]")
            for index, item in enumerate(_list_field(data, "objects"))
        )
        relations = tuple(
            _relation_from_dict(item, f"relations[{index}]")
            for index, item in enumerate(_list_field(data, "relations"))
        )
        scene = data.get("scene")
        if scene is not None and not isinstance(scene, str):
            raise PromptSpecError("scene", scene, "must be a string or null")
        return cls(objects, relations, scene)

    def object_by_id(self, object_id: str) -> SpatialObject:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(object_id)

    def describe_relation(self, index: int) -> str:
        """``"cat left_of dog"`` (names, or ids for unknown ones) for messages."""
        names = {obj.id: obj.name for obj in self.objects}
        relation = self.relations[index]
        others = " and ".join(names.get(ref, ref) for ref in relation.objects)
        return f"{names.get(relation.subject, relation.subject)} {relation.relation} {others}"

    def normalize_ids(self) -> StructuredPrompt:
        """The same prompt with ids o1, o2, ... in order of first mention by the relations."""
        order: dict[str, None] = {}
        for relation in self.relations:
            order.setdefault(relation.subject)
            for ref in relation.objects:
                order.setdefault(ref)
        for obj in self.objects:
            order.setdefault(obj.id)
        new_ids = {old: f"o{position}" for position, old in enumerate(order, start=1)}
        by_id = {obj.id: obj for obj in self.objects}
        objects = tuple(
            SpatialObject(new_ids[old], by_id[old].name, by_id[old].count, by_id[old].attributes)
            for old in order
            if old in by_id
        )
        relations = tuple(
            Relation(
                new_ids[r.subject], r.relation, tuple(new_ids.get(ref, ref) for ref in r.objects)
            )
            for r in self.relations
        )
        return StructuredPrompt(objects, relations, self.scene)

    def validation_errors(self, *, vocabulary: Vocabulary | None = None) -> list[PromptSpecError]:
        """Every problem found (empty when valid); contradictions only for well-formed ones."""
        return prompt_errors(self, vocabulary=vocabulary)

    def validate(self, *, vocabulary: Vocabulary | None = None) -> None:
        """Raise the first ``PromptSpecError`` found (see ``validation_errors``)."""
        errors = self.validation_errors(vocabulary=vocabulary)
        if errors:
            raise errors[0]


def _reject_unknown_keys(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            prefix = f"{path}." if path else ""
            raise PromptSpecError(f"{prefix}{key}", data[key], "unknown key")


def _list_field(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        raise PromptSpecError(key, value, "must be a list")
    return list(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise PromptSpecError(path, value, "must be a non-empty string")
    return value


def _object_from_dict(item: Any, path: str) -> SpatialObject:
    if not isinstance(item, Mapping):
        raise PromptSpecError(path, item, "must be an object")
    _reject_unknown_keys(item, {"id", "name", "count", "attributes"}, path)
    count = item.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise PromptSpecError(f"{path}.count", count, "must be an integer")
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise PromptSpecError(f"{path}.attributes", attributes, "must be an object")
    for key, word in attributes.items():
        if not isinstance(word, str):
            raise PromptSpecError(f"{path}.attributes.{key}", word, "must be a string")
    return SpatialObject(
        _string(item.get("id"), f"{path}.id"),
        _string(item.get("name"), f"{path}.name"),
        count,
        _attribute_tuple(attributes),
    )


def _relation_from_dict(item: Any, path: str) -> Relation:
    if not isinstance(item, Mapping):
        raise PromptSpecError(path, item, "must be an object")
    _reject_unknown_keys(item, {"subject", "relation", "objects"}, path)
    objects = item.get("objects")
    if not isinstance(objects, list | tuple):
        raise PromptSpecError(f"{path}.objects", objects, "must be a list of object ids")
    return Relation(
        _string(item.get("subject"), f"{path}.subject"),
        _string(item.get("relation"), f"{path}.relation"),
        tuple(_string(ref, f"{path}.objects[{i}]") for i, ref in enumerate(objects)),
    )
