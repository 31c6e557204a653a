"""Train/val/test assignment by a stable hash of the prompt group.

An original prompt and its perturbations share a group key, and the split is a function of
that key alone (plus the seed), so a group never straddles splits and re-freezing the same
data gives the same assignment. Held-out groups (those whose prompts mention a held-out object
or relation, decided by the caller over the whole group) all go to the held-out split.
"""

from __future__ import annotations

import hashlib

from training_bridge.aggregation.specs import SplitSpec


def group_unit_interval(*, group_key: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, group key)."""
    digest = hashlib.sha256(f"{seed}\x1f{group_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for_group(*, group_key: str, spec: SplitSpec, held_out: bool = False) -> str:
    if held_out:
        return spec.held_out_split
    point = group_unit_interval(group_key=group_key, seed=spec.seed)
    cumulative = 0.0
    last = spec.ratios[0][0]
    for name, ratio in spec.ratios:
        if ratio <= 0:
            continue
        last = name
        cumulative += ratio
        if point < cumulative:
            return name
    return last  # rounding left a sliver above the last boundary


def keys_mention(keys: str, wanted: tuple[str, ...]) -> bool:
    """Whether a '|a|b|' key string names any of `wanted`."""
    return any(f"|{item}|" in keys for item in wanted)
