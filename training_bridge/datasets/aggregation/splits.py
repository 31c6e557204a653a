"""Train/val/test assignment by a stable hash of the prompt group.

An original prompt and its perturbations share a group key, and the split is a function of
that key alone (plus the seed), so a group never straddles splits and re-freezing the same
data gives the same assignment. Held-out groups (those whose prompts mention a held-out object
or relation, decided by the caller over the whole group) all go to the held-out split.

The hash and the layout of the ratios are the spatial engine's (`spatial.splits.group_split`),
the rule a prompt's own split was drawn with: a dataset whose split spec has the prompt set's
seed and ratios puts every pair in its prompt's split.
"""

from __future__ import annotations

from generation_workers.spatial.splits import group_split
from training_bridge.datasets.aggregation.specs import SplitSpec


def split_for_group(*, group_key: str, spec: SplitSpec, held_out: bool = False) -> str:
    if held_out:
        return spec.held_out_split
    return group_split(group_key, shares=spec.ratios, seed=spec.seed)


def keys_mention(keys: str, wanted: tuple[str, ...]) -> bool:
    """Whether a '|a|b|' key string names any of `wanted`."""
    return any(f"|{item}|" in keys for item in wanted)
