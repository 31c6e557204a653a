"""The canonical spatial relations, their semantics and their English synonyms.

Fifteen canonical relation ids. ``A left_of B`` reads "A is to the left of B": the first
argument (the subject) is the object being placed, the others are the reference objects.
``between`` is ternary: ``A between B C``.

Chosen semantics (image-plane x grows to the right, y grows upwards, depth grows away from the
viewer):

- ``above`` / ``below``: vertical order WITHOUT contact (a lamp above a table).
- ``on_top_of`` / ``under``: vertical order WITH contact; they are each other's inverse, so
  ``A under B`` means ``B`` rests on ``A`` (a book under a cup). "beneath", "underneath" and
  T2I-CompBench's "on the bottom of" mean ``under``; "below" and "lower than" mean ``below``.
- ``in_front_of`` / ``behind``: depth order (3D). CompBench's "hidden by" means ``behind``.
- ``inside``: A is contained in B (3D); containment is a strict partial order.
- ``next_to`` (adjacent, not inside each other) and ``near`` (close): symmetric.
- ``between``: A lies strictly between B and C on the horizontal axis.
- ``centered_on``: A's centre has B's horizontal position (says nothing about height).
- ``aligned_with_edge_of``: A lines up with an edge of B; it constrains nothing else.
- ``against``: A touches B (leaning or pushed against it), not inside it.

The consistency rules that follow from this live in ``consistency.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .errors import PromptSpecError

AXES: tuple[str, ...] = (
    "horizontal",
    "vertical",
    "depth",
    "contact",
    "proximity",
    "containment",
    "alignment",
)


@dataclass(frozen=True, slots=True)
class RelationSpec:
    """Semantics of one canonical relation.

    ``arity`` counts all arguments (2 for binary relations, 3 for ``between``);
    ``direction`` is where the subject lies relative to the reference (``left``, ``right``,
    ``up``, ``down``, ``front``, ``back``, ``in``) or None; ``inverse`` is the relation that
    states the same fact with the two arguments exchanged; ``dimension`` is ``"2d"`` when an
    image-plane layout decides it and ``"3d"`` when it needs depth or containment.
    """

    id: str
    arity: int
    axis: str
    direction: str | None
    inverse: str | None
    symmetric: bool
    dimension: str
    phrase: str

    @property
    def num_objects(self) -> int:
        """How many reference objects follow the subject."""
        return self.arity - 1


def _spec(
    id_: str,
    axis: str,
    phrase: str,
    *,
    direction: str | None = None,
    inverse: str | None = None,
    symmetric: bool = False,
    dimension: str = "2d",
    arity: int = 2,
) -> RelationSpec:
    return RelationSpec(id_, arity, axis, direction, inverse, symmetric, dimension, phrase)


RELATIONS: Mapping[str, RelationSpec] = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            _spec("left_of", "horizontal", "to the left of", direction="left", inverse="right_of"),
            _spec(
                "right_of", "horizontal", "to the right of", direction="right", inverse="left_of"
            ),
            _spec("above", "vertical", "above", direction="up", inverse="below"),
            _spec("below", "vertical", "below", direction="down", inverse="above"),
            _spec(
                "in_front_of",
                "depth",
                "in front of",
                direction="front",
                inverse="behind",
                dimension="3d",
            ),
            _spec(
                "behind", "depth", "behind", direction="back", inverse="in_front_of", dimension="3d"
            ),
            _spec("on_top_of", "contact", "on top of", direction="up", inverse="under"),
            _spec("under", "contact", "under", direction="down", inverse="on_top_of"),
            _spec("inside", "containment", "inside", direction="in", dimension="3d"),
            _spec("next_to", "proximity", "next to", symmetric=True),
            _spec("near", "proximity", "near", symmetric=True),
            _spec("between", "horizontal", "between", arity=3),
            _spec("centered_on", "alignment", "centered on"),
            _spec("aligned_with_edge_of", "alignment", "aligned with the edge of"),
            _spec("against", "contact", "against", dimension="3d"),
        )
    }
)

RELATION_IDS: tuple[str, ...] = tuple(RELATIONS)

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "left_of": (
        "left of",
        "to the left of",
        "on the left of",
        "on the left side of",
        "to the left side of",
        "at the left of",
        "on the left-hand side of",
    ),
    "right_of": (
        "right of",
        "to the right of",
        "on the right of",
        "on the right side of",
        "to the right side of",
        "at the right of",
        "on the right-hand side of",
    ),
    "above": ("above", "over", "higher than"),
    "below": ("below", "lower than"),
    "in_front_of": ("in front of", "in the front of"),
    "behind": ("behind", "in back of", "at the back of", "hidden by"),
    "on_top_of": ("on top of", "on the top of", "on", "atop", "upon"),
    "under": ("under", "beneath", "underneath", "on the bottom of"),
    "inside": ("inside", "inside of", "in", "within"),
    "next_to": ("next to", "beside", "on side of", "at the side of", "alongside", "adjacent to"),
    "near": ("near", "near to", "close to"),
    "between": ("between", "in between", "midway between", "at the midpoint between"),
    "centered_on": (
        "centered on",
        "centred on",
        "in the center of",
        "in the centre of",
        "in the middle of",
    ),
    "aligned_with_edge_of": (
        "aligned with the edge of",
        "aligned with edge of",
        "aligned to the edge of",
        "along the edge of",
        "at the edge of",
    ),
    "against": ("against", "leaning against", "pushed against", "up against"),
}


def normalize_phrase(phrase: str) -> str:
    """Lower-case, ``_`` as space, single spaces: the key synonyms are looked up by."""
    return " ".join(phrase.replace("_", " ").lower().split())


def _synonym_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for relation_id, phrases in _SYNONYMS.items():
        for phrase in (relation_id, *phrases):
            key = normalize_phrase(phrase)
            if table.setdefault(key, relation_id) != relation_id:  # pragma: no cover - data bug
                raise AssertionError(f"synonym {key!r} maps to two relations")
    return table


SYNONYMS: Mapping[str, str] = MappingProxyType(_synonym_table())
"""Every accepted phrase (normalised) -> canonical relation id."""


def canonical_relation(phrase: str) -> str:
    """The canonical relation id for an English phrase or id ("on the left of" -> "left_of").

    Raises ``PromptSpecError(field="relation")`` for an unknown phrase.
    """
    if not isinstance(phrase, str):
        raise PromptSpecError("relation", phrase, f"relation must be a string, not {phrase!r}")
    relation_id = SYNONYMS.get(normalize_phrase(phrase))
    if relation_id is None:
        raise PromptSpecError("relation", phrase, f"unknown relation {phrase!r}")
    return relation_id


def relation_spec(relation_id: str) -> RelationSpec:
    """The semantics of a canonical relation id; ``PromptSpecError`` for anything else."""
    spec = RELATIONS.get(relation_id)
    if spec is None:
        hint = SYNONYMS.get(normalize_phrase(relation_id)) if isinstance(relation_id, str) else None
        suffix = f" (did you mean {hint!r}?)" if hint else ""
        raise PromptSpecError("relation", relation_id, f"unknown relation {relation_id!r}{suffix}")
    return spec
