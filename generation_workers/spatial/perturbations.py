"""Perturbations: prompts that contradict their original (SpatialScore-style negatives).

- ``swap``: exchange two objects of one relation everywhere in the prompt, so that relation
  now points the other way ("a cat left of a dog" -> "a dog left of a cat"). Only relations
  whose reversal contradicts them qualify (``SWAPPABLE``); for ``between`` the middle object
  trades places with an end. Two identically described objects are never swapped.
- ``replace``: put a relation in the same place that contradicts it but is not its inverse
  (``REPLACEMENTS``, e.g. ``above`` -> ``on_top_of``/``under``/``against``); never a synonym.
- ``flip``: the relation becomes its inverse on the same objects (``left_of`` -> ``right_of``).
- ``multi``: 2-3 of the above on different relations.

``near``, ``aligned_with_edge_of`` and the symmetric ``next_to`` are never swapped or flipped;
``next_to`` can be replaced by ``inside``. Every table below is derived from the semantics in
``consistency.py``, and every result is checked: the perturbed prompt is itself consistent,
and some relation of it contradicts the original's relation at the same position, which proves
``contradicts(original, perturbed)``. Objects and their ids never change.

Lineage: ``{"type": "swap"|"replace"|"flip"|"multi", "num_perturbations": n, "changes": [...]}``
with changes ``{"op": "swap", "relation_index": i, "objects": ["o1", "o2"]}``,
``{"op": "replace"|"flip", "relation_index": i, "from": "left_of", "to": "right_of"}``
(indices refer to the relations as they were when that change was made).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .consistency import find_conflicts, relations_contradict
from .errors import PromptSpecError
from .relations import RELATION_IDS, RELATIONS
from .structure import Relation, StructuredPrompt

PERTURBATION_TYPES: tuple[str, ...] = ("swap", "replace", "flip", "multi")
_SINGLE_TYPES: tuple[str, ...] = ("swap", "replace", "flip")
_BINARY = tuple(r for r in RELATION_IDS if RELATIONS[r].arity == 2)

LeanRelation = tuple[int, str, tuple[int, ...]]
Change = dict[str, Any]


def _contradict(first: str, second: str, *, swapped: bool) -> bool:
    other = (1, second, (0,)) if swapped else (0, second, (1,))
    return relations_contradict((0, first, (1,)), other)


SWAPPABLE: frozenset[str] = frozenset(
    {r for r in _BINARY if _contradict(r, r, swapped=True)} | {"between"}
)
FLIPS: Mapping[str, str] = MappingProxyType(
    {
        r: RELATIONS[r].inverse  # type: ignore[misc]
        for r in _BINARY
        if RELATIONS[r].inverse and _contradict(r, RELATIONS[r].inverse or "", swapped=False)
    }
)
REPLACEMENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        r: tuple(
            other
            for other in _BINARY
            if other not in (r, RELATIONS[r].inverse) and _contradict(r, other, swapped=False)
        )
        for r in _BINARY
    }
)


_CONTRADICT_SAME: frozenset[tuple[str, str]] = frozenset(
    (a, b) for a in _BINARY for b in _BINARY if _contradict(a, b, swapped=False)
)
_CONTRADICT_SWAPPED: frozenset[tuple[str, str]] = frozenset(
    (a, b) for a in _BINARY for b in _BINARY if _contradict(a, b, swapped=True)
)


def _pair_contradicts(before: LeanRelation, after: LeanRelation) -> bool:
    """``relations_contradict`` with a table lookup for the common binary cases."""
    (s1, r1, refs1), (s2, r2, refs2) = before, after
    if len(refs1) == 1 and len(refs2) == 1:
        if s1 == s2 and refs1[0] == refs2[0]:
            return (r1, r2) in _CONTRADICT_SAME
        if s1 == refs2[0] and refs1[0] == s2:
            return (r1, r2) in _CONTRADICT_SWAPPED
    return relations_contradict(before, after)


def _swap(
    relations: Sequence[LeanRelation],
    index: int,
    objects: Sequence[Any],
    ids: Sequence[str],
    rng: random.Random,
) -> tuple[list[LeanRelation], Change] | None:
    subject, relation, references = relations[index]
    if relation not in SWAPPABLE:
        return None
    other = references[0] if len(references) == 1 else references[rng.randrange(len(references))]
    if objects[subject] == objects[other]:
        return None  # the text would not change
    exchange = {subject: other, other: subject}
    swapped = [
        (exchange.get(s, s), r, tuple(exchange.get(ref, ref) for ref in refs))
        for s, r, refs in relations
    ]
    return swapped, {"op": "swap", "relation_index": index, "objects": [ids[subject], ids[other]]}


def _has_leaf_end(relations: Sequence[LeanRelation], index: int) -> bool:
    """True when an object of binary relation ``index`` appears in no other relation.

    Every contradiction through that relation (an order cycle, a contact or containment clash
    on its pair, a misplaced ``between``) needs a second relation at both of its objects, so
    the relation can then change freely without making the prompt contradict itself.
    """
    subject, _relation, references = relations[index]
    if len(references) != 1:
        return False
    subject_elsewhere = reference_elsewhere = False
    other = references[0]
    for position, (s, _r, refs) in enumerate(relations):
        if position == index:
            continue
        if s == subject or subject in refs:
            subject_elsewhere = True
        if s == other or other in refs:
            reference_elsewhere = True
        if subject_elsewhere and reference_elsewhere:
            return False
    return True


def _change_relation(
    relations: Sequence[LeanRelation],
    index: int,
    op: str,
    rng: random.Random,
    allowed: Collection[str] | None,
) -> tuple[list[LeanRelation], Change] | None:
    subject, relation, references = relations[index]
    if op == "flip":
        choices = [FLIPS[relation]] if relation in FLIPS else []
    else:
        choices = [r for r in REPLACEMENTS.get(relation, ()) if allowed is None or r in allowed]
        rng.shuffle(choices)
    isolated = _has_leaf_end(relations, index)
    for choice in choices:
        changed = list(relations)
        changed[index] = (subject, choice, references)
        # The rest was consistent; only a conflict through the new relation can appear.
        if not isolated and find_conflicts(changed, focus=(index,), first_only=True):
            continue
        return changed, {"op": op, "relation_index": index, "from": relation, "to": choice}
    return None


def _single(
    op: str,
    relations: Sequence[LeanRelation],
    index: int,
    objects: Sequence[Any],
    ids: Sequence[str],
    rng: random.Random,
    allowed: Collection[str] | None,
) -> tuple[list[LeanRelation], Change] | None:
    if op == "swap":
        return _swap(relations, index, objects, ids, rng)
    return _change_relation(relations, index, op, rng, allowed)


def perturb_lean(
    objects: Sequence[Any],
    relations: Sequence[LeanRelation],
    ids: Sequence[str],
    *,
    kind: str,
    rng: random.Random,
    allowed: Collection[str] | None = None,
    max_changes: int = 3,
) -> tuple[list[LeanRelation], list[Change]] | None:
    """One perturbation of a consistent prompt given by position (None when none applies).

    ``objects`` are compared for equality only (two equal ones are never swapped); ``ids``
    name them in the lineage; ``allowed`` limits the relations ``replace`` may introduce.
    """
    order = list(range(len(relations)))
    if len(order) > 1:
        rng.shuffle(order)
    if kind != "multi":
        for index in order:
            result = _single(kind, relations, index, objects, ids, rng, allowed)
            if result is not None:
                return result[0], [result[1]]
        return None
    if len(relations) < 2 or max_changes < 2:
        return None
    wanted = rng.randint(2, min(max_changes, 3, len(relations)))
    for _attempt in range(6):
        current: list[LeanRelation] = list(relations)
        changes: list[Change] = []
        for index in order:
            ops = list(_SINGLE_TYPES)
            rng.shuffle(ops)
            for op in ops:
                result = _single(op, current, index, objects, ids, rng, allowed)
                if result is not None:
                    current, change = result
                    changes.append(change)
                    break
            if len(changes) == wanted:
                break
        proven = any(
            before != after and _pair_contradicts(before, after)
            for before, after in zip(relations, current, strict=True)
        )
        if len(changes) >= 2 and proven:
            return current, changes
        rng.shuffle(order)
    return None


def perturb_family_lean(
    objects: Sequence[Any],
    relations: Sequence[LeanRelation],
    ids: Sequence[str],
    *,
    types: Sequence[str],
    count: int,
    rng: random.Random,
    allowed: Collection[str] | None = None,
    max_changes: int = 3,
) -> list[tuple[str, list[LeanRelation], list[Change]]]:
    """Up to ``count`` distinct perturbations, types taken in turn from a random start."""
    family: list[tuple[str, list[LeanRelation], list[Change]]] = []
    if count <= 0 or not types:
        return family
    if len(relations) == 1:
        return _one_relation_family(objects, relations[0], ids, types, count, rng, allowed)
    seen = {tuple(relations)}
    start = rng.randrange(len(types))
    rotation = [types[(start + step) % len(types)] for step in range(len(types))]
    for child in range(count):
        for offset in range(len(rotation)):
            kind = rotation[(child + offset) % len(rotation)]
            result = perturb_lean(
                objects,
                relations,
                ids,
                kind=kind,
                rng=rng,
                allowed=allowed,
                max_changes=max_changes,
            )
            if result is None or tuple(result[0]) in seen:
                continue
            seen.add(tuple(result[0]))
            family.append((kind, result[0], result[1]))
            break
    return family


def _one_relation_family(
    objects: Sequence[Any],
    relation: LeanRelation,
    ids: Sequence[str],
    types: Sequence[str],
    count: int,
    rng: random.Random,
    allowed: Collection[str] | None,
) -> list[tuple[str, list[LeanRelation], list[Change]]]:
    """``perturb_family_lean`` for one relation (the bulk of template prompt sets).

    Nothing else can clash with a lone relation, so every option is listed up front; kinds are
    then taken in turn from a random start, each child a different option.
    """
    subject, name, references = relation
    options: dict[str, list[tuple[LeanRelation, Change]]] = {}
    for kind in types:
        found: list[tuple[LeanRelation, Change]] = []
        if kind == "swap" and name in SWAPPABLE:
            for other in references:
                if objects[subject] != objects[other]:
                    refs = tuple(subject if ref == other else ref for ref in references)
                    change = {
                        "op": "swap",
                        "relation_index": 0,
                        "objects": [ids[subject], ids[other]],
                    }
                    found.append(((other, name, refs), change))
        elif kind in ("flip", "replace"):
            if kind == "flip":
                targets = [FLIPS[name]] if name in FLIPS else []
            else:
                targets = [r for r in REPLACEMENTS.get(name, ()) if allowed is None or r in allowed]
            for target in targets:
                change = {"op": kind, "relation_index": 0, "from": name, "to": target}
                found.append(((subject, target, references), change))
        if found:
            options[kind] = found
    family: list[tuple[str, list[LeanRelation], list[Change]]] = []
    kinds = list(options)
    if not kinds:
        return family
    start = rng.randrange(len(kinds))
    for child in range(count):
        for offset in range(len(kinds)):
            kind = kinds[(start + child + offset) % len(kinds)]
            if options[kind]:
                pick = options[kind].pop(rng.randrange(len(options[kind])))
                family.append((kind, [pick[0]], [pick[1]]))
                break
    return family


@dataclass(frozen=True)
class Perturbation:
    """A perturbed prompt (same objects and ids) and how it was made."""

    prompt: StructuredPrompt
    lineage: dict[str, Any]


def lineage(kind: str, changes: list[Change]) -> dict[str, Any]:
    return {"type": kind, "changes": changes, "num_perturbations": len(changes)}


def _lean(prompt: StructuredPrompt) -> tuple[list[Any], list[LeanRelation], list[str]]:
    ids = [obj.id for obj in prompt.objects]
    position = {object_id: index for index, object_id in enumerate(ids)}
    objects = [(obj.name, obj.count, obj.attributes) for obj in prompt.objects]
    relations = [
        (position[r.subject], r.relation, tuple(position[ref] for ref in r.objects))
        for r in prompt.relations
    ]
    return objects, relations, ids


def _rebuild(prompt: StructuredPrompt, relations: Sequence[LeanRelation]) -> StructuredPrompt:
    ids = [obj.id for obj in prompt.objects]
    return StructuredPrompt(
        prompt.objects,
        tuple(Relation(ids[s], r, tuple(ids[ref] for ref in refs)) for s, r, refs in relations),
        prompt.scene,
    )


def perturbations_for(
    prompt: StructuredPrompt,
    *,
    types: Sequence[str] = PERTURBATION_TYPES,
    count: int = 1,
    seed: int | str = 0,
    relations: Collection[str] | None = None,
    max_changes: int = 3,
) -> list[Perturbation]:
    """Up to ``count`` distinct perturbations of a valid prompt, deterministic in ``seed``.

    ``relations`` limits what ``replace`` may introduce (all relations when None).
    """
    for position, kind in enumerate(types):
        if kind not in PERTURBATION_TYPES:
            raise PromptSpecError(f"types[{position}]", kind, f"unknown perturbation {kind!r}")
    prompt.validate()
    objects, lean_relations, ids = _lean(prompt)
    rng = random.Random(f"perturb:{seed}")
    family = perturb_family_lean(
        objects,
        lean_relations,
        ids,
        types=types,
        count=count,
        rng=rng,
        allowed=relations,
        max_changes=max_changes,
    )
    return [
        Perturbation(_rebuild(prompt, changed), lineage(kind, changes))
        for kind, changed, changes in family
    ]


def perturb(
    prompt: StructuredPrompt,
    *,
    kind: str,
    seed: int | str = 0,
    relations: Collection[str] | None = None,
    max_changes: int = 3,
) -> Perturbation | None:
    """One perturbation of ``kind`` ("swap", "replace", "flip", "multi"), or None if none
    applies to this prompt (e.g. ``flip`` on a prompt with only ``near``)."""
    found = perturbations_for(
        prompt, types=(kind,), count=1, seed=seed, relations=relations, max_changes=max_changes
    )
    return found[0] if found else None
