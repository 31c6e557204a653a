"""Seeded, platform-independent sampling without replacement.

``SeededPermutation`` is a bijection of ``range(size)`` (keyed multiply-xorshift rounds over
the next power of two, with cycle walking), so walking ``permutation[0], permutation[1], ...``
visits every index exactly once in a seed-determined order, in O(1) memory and without
materialising the space. Keys come from blake2b, never from Python's salted ``hash()``, so the
same seed gives the same order on every machine and run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

_MASK64 = (1 << 64) - 1


def derive_key(*parts: object) -> int:
    """A 64-bit key from the parts' text (stable across processes and machines)."""
    material = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big")


def mix64(value: int) -> int:
    """SplitMix64 finaliser: a cheap, well-spread 64-bit hash of a 64-bit integer."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class SeededPermutation:
    """A seeded bijection on ``range(size)``; ``permutation[i]`` for ``0 <= i < size``.

    Four keyed rounds of ``x -> (x * odd + constant) mod 2**k; x ^= x >> (k // 2)`` over the
    smallest power of two ``2**k >= size`` (each step is a bijection of k-bit integers), with
    cycle walking to stay inside ``range(size)``: fewer than two rounds trips on average.
    """

    __slots__ = ("size", "_mask", "_shift", "_keys")

    def __init__(self, size: int, *key_parts: object) -> None:
        if size < 1:
            raise ValueError("a permutation needs size >= 1")
        self.size = size
        bits = max(2, (size - 1).bit_length())
        self._mask = (1 << bits) - 1
        self._shift = max(1, bits // 2)
        keys = [derive_key("permutation", *key_parts, round_) for round_ in range(8)]
        self._keys = tuple((keys[2 * r] | 1, keys[2 * r + 1]) for r in range(4))

    def _encrypt(self, value: int) -> int:
        mask, shift = self._mask, self._shift
        for multiplier, offset in self._keys:
            value = (value * multiplier + offset) & mask
            value ^= value >> shift
        return value

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        value = self._encrypt(index)
        while value >= self.size:  # cycle walking stays inside range(size)
            value = self._encrypt(value)
        return value

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        """``permutation[0], permutation[1], ...``; the same values, without per-call overhead."""
        size, mask, shift = self.size, self._mask, self._shift
        (m0, a0), (m1, a1), (m2, a2), (m3, a3) = self._keys
        for value in range(size):
            while True:
                value = (value * m0 + a0) & mask
                value ^= value >> shift
                value = (value * m1 + a1) & mask
                value ^= value >> shift
                value = (value * m2 + a2) & mask
                value ^= value >> shift
                value = (value * m3 + a3) & mask
                value ^= value >> shift
                if value < size:
                    break
            yield value
