"""What makes a structured prompt valid (``StructuredPrompt.validate`` runs these checks).

Objects: unique ids, lower-case names (in the vocabulary when it is strict), counts 1..20,
only ``color`` and ``size`` attributes (vocabulary words when strict), no two objects with the
same name and attributes, every object used by a relation. Relations: at least one, canonical
ids with the right number of objects, no dangling ids, no object related to itself, no exact
repeats. Scene: lower-case words or None. Then, for otherwise valid prompts, no contradiction
(``consistency.py``), reported as field ``relations`` with the conflicting indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .consistency import check_consistency
from .errors import PromptSpecError
from .inflection import MAX_COUNT
from .relations import RELATIONS, SYNONYMS, normalize_phrase
from .vocabulary import Vocabulary

if TYPE_CHECKING:
    from .structure import SpatialObject, StructuredPrompt

ATTRIBUTE_KEYS: tuple[str, ...] = ("size", "color")
"""The attribute kinds, in the order they are spoken ("a small red cup")."""


def prompt_errors(
    prompt: StructuredPrompt, *, vocabulary: Vocabulary | None = None
) -> list[PromptSpecError]:
    """Every problem of the prompt; contradictions are only looked for when there is no other."""
    errors = _object_errors(prompt.objects, vocabulary)
    errors.extend(_relation_errors(prompt))
    if prompt.scene is not None and not is_phrase(prompt.scene):
        errors.append(
            PromptSpecError("scene", prompt.scene, "must be lower-case words, e.g. 'kitchen'")
        )
    if not errors:
        for conflict in check_consistency(prompt):
            errors.append(
                PromptSpecError("relations", list(conflict.relation_indices), conflict.message())
            )
    return errors


def is_phrase(value: object) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and value == " ".join(value.split())
        and value == value.lower()
        and all(char.isalnum() or char in " -'" for char in value)
    )


def _object_errors(
    objects: Sequence[SpatialObject], vocabulary: Vocabulary | None
) -> list[PromptSpecError]:
    errors: list[PromptSpecError] = []
    seen_ids: set[str] = set()
    seen_descriptions: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for index, obj in enumerate(objects):
        path = f"objects[{index}]"
        if not obj.id or " " in obj.id:
            errors.append(PromptSpecError(f"{path}.id", obj.id, "must be a non-empty id"))
        elif obj.id in seen_ids:
            errors.append(PromptSpecError(f"{path}.id", obj.id, f"duplicate id {obj.id!r}"))
        seen_ids.add(obj.id)
        if not is_phrase(obj.name):
            errors.append(PromptSpecError(f"{path}.name", obj.name, "must be lower-case words"))
        elif vocabulary is not None and vocabulary.strict and obj.name not in vocabulary:
            errors.append(
                PromptSpecError(
                    f"{path}.name", obj.name, f"unknown object {obj.name!r} in {vocabulary.name}"
                )
            )
        if isinstance(obj.count, bool) or not isinstance(obj.count, int):
            errors.append(PromptSpecError(f"{path}.count", obj.count, "must be an integer"))
        elif not 1 <= obj.count <= MAX_COUNT:
            errors.append(
                PromptSpecError(f"{path}.count", obj.count, f"must be between 1 and {MAX_COUNT}")
            )
        for key, word in obj.attributes:
            errors.extend(_attribute_errors(f"{path}.attributes.{key}", key, word, vocabulary))
        description = (obj.name, obj.attributes)
        if description in seen_descriptions:
            first = seen_descriptions[description]
            errors.append(
                PromptSpecError(
                    path,
                    obj.name,
                    f"described exactly like objects[{first}]; add an attribute or use count",
                )
            )
        seen_descriptions.setdefault(description, index)
    return errors


def _attribute_errors(
    path: str, key: str, word: str, vocabulary: Vocabulary | None
) -> list[PromptSpecError]:
    if key not in ATTRIBUTE_KEYS:
        return [PromptSpecError(path, word, f"unknown attribute {key!r} (known: color, size)")]
    if not is_phrase(word) or " " in word:
        return [PromptSpecError(path, word, "must be one lower-case word")]
    allowed = None
    if vocabulary is not None and vocabulary.strict:
        allowed = vocabulary.colors if key == "color" else vocabulary.sizes
    if allowed is not None and word not in allowed:
        return [PromptSpecError(path, word, f"unknown {key} {word!r}")]
    return []


def _relation_errors(prompt: StructuredPrompt) -> list[PromptSpecError]:
    errors: list[PromptSpecError] = []
    ids = {obj.id for obj in prompt.objects}
    if not prompt.relations:
        errors.append(PromptSpecError("relations", [], "needs at least one relation"))
    used: set[str] = set()
    seen: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for index, relation in enumerate(prompt.relations):
        path = f"relations[{index}]"
        spec = RELATIONS.get(relation.relation)
        if spec is None:
            hint = SYNONYMS.get(normalize_phrase(relation.relation))
            suffix = f" (did you mean {hint!r}?)" if hint else ""
            errors.append(
                PromptSpecError(
                    f"{path}.relation",
                    relation.relation,
                    f"unknown relation {relation.relation!r}{suffix}",
                )
            )
        elif len(relation.objects) != spec.num_objects:
            errors.append(
                PromptSpecError(
                    f"{path}.objects",
                    list(relation.objects),
                    f"{relation.relation!r} takes {spec.num_objects} object(s), "
                    f"not {len(relation.objects)}",
                )
            )
        if relation.subject not in ids:
            errors.append(
                PromptSpecError(
                    f"{path}.subject", relation.subject, f"no object has id {relation.subject!r}"
                )
            )
        for position, ref in enumerate(relation.objects):
            if ref not in ids:
                errors.append(
                    PromptSpecError(f"{path}.objects[{position}]", ref, f"no object has id {ref!r}")
                )
        arguments = (relation.subject, *relation.objects)
        if len(set(arguments)) != len(arguments):
            errors.append(
                PromptSpecError(
                    f"{path}.objects", list(relation.objects), "relates an object to itself"
                )
            )
        used.update(arguments)
        ends = (
            tuple(sorted(relation.objects)) if relation.relation == "between" else relation.objects
        )
        key = (relation.subject, relation.relation, ends)
        if key in seen:
            errors.append(
                PromptSpecError(path, relation.to_dict(), f"repeats relations[{seen[key]}]")
            )
        seen.setdefault(key, index)
    for index, obj in enumerate(prompt.objects):
        if obj.id not in used and prompt.relations:
            errors.append(
                PromptSpecError(f"objects[{index}]", obj.id, "is not used by any relation")
            )
    return errors
