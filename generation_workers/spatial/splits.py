"""Train/val/test assignment by a stable hash of a group key.

A prompt and its perturbations share one group key, so they always land in the same split.
The hash is blake2b of ``"<seed>:<group key>"``, never Python's salted ``hash()``: the same key
and seed give the same split on every machine, process and release.

``group_split`` is the one rule: a prompt's stored split (prompt set builds) and a dataset
version's split of its pairs (training_bridge.datasets.aggregation) both call it, so the same group,
seed and ratios land in the same split in both.

Held-out objects and relations (compositional generalisation): ``SplitPolicy`` sends every
prompt that mentions one of them to the held-out split (``"test"``), whatever its hash says.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import PromptSpecError
from .relations import RELATIONS
from .vocabulary import Vocabulary

DEFAULT_RATIOS: Mapping[str, float] = MappingProxyType({"train": 0.8, "val": 0.1, "test": 0.1})


def check_ratios(ratios: Any, *, field_name: str = "ratios") -> dict[str, float]:
    """Split names -> shares; shares must be non-negative numbers summing to 1."""
    if not isinstance(ratios, Mapping) or not ratios:
        raise PromptSpecError(field_name, ratios, "must map split names to shares")
    checked: dict[str, float] = {}
    for name, share in ratios.items():
        if not isinstance(name, str) or not name:
            raise PromptSpecError(field_name, name, "split names must be non-empty strings")
        if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
            raise PromptSpecError(f"{field_name}.{name}", share, "must be a number >= 0")
        checked[name] = float(share)
    if not math.isclose(sum(checked.values()), 1.0, abs_tol=1e-9):
        raise PromptSpecError(field_name, ratios, "shares must sum to 1")
    return checked


def split_point(group_key: str, *, seed: int | str = 0) -> float:
    """Where the group falls in [0, 1): the first 8 bytes of blake2b, as a fraction."""
    digest = hashlib.blake2b(f"{seed}:{group_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(
    group_key: str,
    *,
    ratios: Mapping[str, float] = DEFAULT_RATIOS,
    seed: int | str = 0,
) -> str:
    """The split of a group: ratios are laid out on [0, 1) in their given order."""
    shares = check_ratios(ratios)
    return group_split(group_key, shares=tuple(shares.items()), seed=seed)


def group_split(group_key: str, *, shares: Sequence[tuple[str, float]], seed: int | str = 0) -> str:
    """The split of a group for checked (name, share) pairs laid out on [0, 1) in their order;
    a share of 0 never receives a group."""
    point = split_point(group_key, seed=seed)
    cumulative = 0.0
    chosen = shares[0][0]
    for name, share in shares:
        if share <= 0:
            continue
        chosen = name
        cumulative += share
        if point < cumulative:
            return name
    return chosen  # rounding left a sliver past the last boundary


@dataclass(frozen=True)
class SplitPolicy:
    """Hash-based splits, plus held-out objects and relations forced into ``held_out_split``."""

    ratios: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    seed: int | str = 0
    held_out_objects: frozenset[str] = frozenset()
    held_out_relations: frozenset[str] = frozenset()
    held_out_split: str = "test"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", check_ratios(self.ratios))
        if self.held_out_split not in self.ratios and (
            self.held_out_objects or self.held_out_relations
        ):
            raise PromptSpecError(
                "held_out.split", self.held_out_split, "must be one of the ratios' splits"
            )

    def split_for(
        self,
        group_key: str,
        *,
        objects: Iterable[str] = (),
        relations: Iterable[str] = (),
    ) -> str:
        """The split of a prompt family given the object names and relations it mentions."""
        if self.held_out_objects and not self.held_out_objects.isdisjoint(objects):
            return self.held_out_split
        if self.held_out_relations and not self.held_out_relations.isdisjoint(relations):
            return self.held_out_split
        return group_split(group_key, shares=tuple(self.ratios.items()), seed=self.seed)


HELD_OUT_KEYS: tuple[str, ...] = ("ratios", "seed", "objects", "relations", "split")


def split_policy_from_spec(section: Mapping[str, Any], *, vocabulary: Vocabulary) -> SplitPolicy:
    """The ``held_out`` section of a build spec::

    {"ratios": {"train": 0.8, "val": 0.1, "test": 0.1}, "seed": 0,
     "objects": ["zebra"], "relations": ["between"], "split": "test"}

    The split seed is separate from the build seed (default 0), so the same group lands in the
    same split in every prompt set.
    """
    ratios = check_ratios(section.get("ratios", dict(DEFAULT_RATIOS)), field_name="held_out.ratios")
    seed = section.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise PromptSpecError("held_out.seed", seed, "must be an integer or a string")
    held: dict[str, list[str]] = {}
    for key in ("objects", "relations"):
        items = section.get(key, [])
        if isinstance(items, str) or not isinstance(items, list | tuple):
            raise PromptSpecError(f"held_out.{key}", items, "must be a list")
        for index, item in enumerate(items):
            known = item in vocabulary if key == "objects" else item in RELATIONS
            if not known:
                kind = "object" if key == "objects" else "relation"
                raise PromptSpecError(f"held_out.{key}[{index}]", item, f"unknown {kind} {item!r}")
        held[key] = list(items)
    split = section.get("split", "test")
    if split not in ratios:
        raise PromptSpecError("held_out.split", split, f"must be one of {', '.join(ratios)}")
    return SplitPolicy(
        ratios, seed, frozenset(held["objects"]), frozenset(held["relations"]), split
    )


GROUP_KEY_MAX = 64  # characters: the prompt table's group_key column


def group_key_fit(key: str) -> str:
    """The group key as stored and split on: a key longer than GROUP_KEY_MAX (a scene prompt
    names up to 16 objects; an imported group is free text) becomes "h:" and a digest of it,
    so the split drawn at build time is the one a dataset draws later from the stored key."""
    if len(key) <= GROUP_KEY_MAX:
        return key
    return "h:" + hashlib.blake2b(key.encode(), digest_size=(GROUP_KEY_MAX - 2) // 2).hexdigest()


def group_key_for(object_names: Iterable[str]) -> str:
    """The default group: the sorted distinct object names ("cat+dog"), fitted (group_key_fit).

    Every prompt about the same set of objects (any relations, attributes, counts, template)
    shares a split, so "a cat left of a dog" and its swap "a dog left of a cat" never straddle
    train and test.
    """
    return group_key_fit("+".join(sorted(set(object_names))))
