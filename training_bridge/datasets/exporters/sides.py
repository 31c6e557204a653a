"""Which image an export shows first: a stable hash of the pair id, the same in every format.

A pair's candidates are stored as (a, b), and in counterfactual pairs a is the intended winner
almost always; a model that sees both images in that order learns the position. So every
export except the canonical JSONL (whose bytes are the version's content hash) shows the two
sides in an order drawn from the pair id alone: side 0 is candidate b when `sides_swapped`, a
otherwise. About half the pairs are swapped, the same ones in every export of every version.

The hash is splitmix64's finaliser of the pair id (64-bit wrap-around arithmetic), lowest bit:
one line in any language, vectorised here with numpy for the Parquet path.
"""

from __future__ import annotations

import numpy as np

RULE = (
    "side 0 is candidate b when splitmix64(pair_id) is odd, else candidate a; "
    "splitmix64(x): z = x + 0x9E3779B97F4A7C15; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; "
    "z = (z ^ z >> 27) * 0x94D049BB133111EB; z ^ z >> 31 (all mod 2^64)"
)

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def swapped_mask(pair_ids: np.ndarray) -> np.ndarray:
    """For each pair id, whether the export shows candidate b first."""
    z = np.asarray(pair_ids).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(1)).astype(bool)


def sides_swapped(pair_id: int) -> bool:
    return bool(swapped_mask(np.array([pair_id], np.int64))[0])


_SWAP_SIDE = {"a": "b", "b": "a"}


def side_shown(side: str | None, swapped: bool) -> str | None:
    """A side of the stored pair (a / b, or a tie, both-wrong, null) as the export shows it:
    `a` is image 0, `b` image 1."""
    return _SWAP_SIDE.get(side, side) if swapped else side


def record_shown(record: dict) -> dict:
    """The canonical record as the export shows it: candidates in shown order, `label`,
    `intended_winner` and the a / b vote counts relative to them, and `sides_swapped`."""
    swapped = sides_swapped(record["pair_id"])
    shown = dict(record)
    shown["sides_swapped"] = swapped
    if not swapped:
        return shown
    shown["candidates"] = list(reversed(record["candidates"]))
    shown["label"] = side_shown(record["label"], True)
    shown["intended_winner"] = side_shown(record["intended_winner"], True)
    votes = dict(record["votes"])
    votes["a"], votes["b"] = record["votes"]["b"], record["votes"]["a"]
    shown["votes"] = votes
    return shown
