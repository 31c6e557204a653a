"""Every vote of a selection, held compactly for the label models, and what they conclude.

A label model (Dawid-Skene, GLAD, Bradley-Terry) needs all votes before it can label any pair.
`VoteTable` collects them as the selection walks its pairs: per vote the pair, the annotator,
the vote's code and whether candidate a was shown on the left (18 bytes), per pair its prompt,
its two candidates and its known answer (33 bytes), so 3 million votes on a million pairs take
about 90 MB. `Posteriors` keeps, per pair, the label code and confidence a model gave it,
looked up by pair id while the records are streamed (17 bytes a pair).

Arrays come out sorted by (pair, annotator), so a model sees the same votes in the same order
whatever order they were read in: fitting is deterministic.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from training_bridge.datasets.aggregation.labels import LABELS, TIE_EPSILON, VOTE_KINDS

CODES = {kind: code for code, kind in enumerate(VOTE_KINDS)}
NO_LABEL = -1
# Digits kept of a model's confidence: float noise in a fit must not change the content hash.
CONFIDENCE_DIGITS = 6


@dataclass(frozen=True)
class Votes:
    pair: np.ndarray  # int64
    annotator: np.ndarray  # int64
    code: np.ndarray  # int8, index into VOTE_KINDS
    left_is_a: np.ndarray  # bool: candidate a was shown on the left

    def __len__(self) -> int:
        return len(self.pair)


@dataclass(frozen=True)
class Pairs:
    pair: np.ndarray  # int64, ascending
    prompt: np.ndarray  # int64: the prompt the pair is judged against
    candidate_a: np.ndarray  # int64
    candidate_b: np.ndarray  # int64
    known: np.ndarray  # int8: the known answer's label code (settled or gold), else NO_LABEL

    def __len__(self) -> int:
        return len(self.pair)


class VoteTable:
    """The counted votes of a selection, appended pair by pair."""

    def __init__(self) -> None:
        self._pair, self._annotator = array("q"), array("q")
        self._code, self._left_is_a = array("b"), array("b")
        self._pairs, self._prompt = array("q"), array("q")
        self._candidate_a, self._candidate_b = array("q"), array("q")
        self._known = array("b")

    def pair_add(
        self,
        *,
        pair_id: int,
        prompt_id: int,
        candidate_a: int,
        candidate_b: int,
        known: str | None = None,
    ) -> None:
        self._pairs.append(pair_id)
        self._prompt.append(prompt_id)
        self._candidate_a.append(candidate_a)
        self._candidate_b.append(candidate_b)
        self._known.append(NO_LABEL if known is None else CODES[known])

    def vote_add(self, *, pair_id: int, annotator_id: int, vote: str, left_is_a: bool) -> None:
        self._pair.append(pair_id)
        self._annotator.append(annotator_id)
        self._code.append(CODES[vote])
        self._left_is_a.append(int(left_is_a))

    def votes(self, *, kinds: tuple[str, ...] = LABELS) -> Votes:
        """The votes of the given kinds (answers by default: no skips), by pair and annotator."""
        code = np.frombuffer(self._code, np.int8) if self._code else np.zeros(0, np.int8)
        pair = _int64(self._pair)
        annotator = _int64(self._annotator)
        left_is_a = (
            np.frombuffer(self._left_is_a, np.int8).astype(bool)
            if self._left_is_a
            else np.zeros(0, bool)
        )
        keep = np.isin(code, [CODES[kind] for kind in kinds])
        order = np.lexsort((annotator[keep], pair[keep]))
        return Votes(
            pair=pair[keep][order],
            annotator=annotator[keep][order],
            code=code[keep][order],
            left_is_a=left_is_a[keep][order],
        )

    def pairs(self) -> Pairs:
        pair = _int64(self._pairs)
        order = np.argsort(pair, kind="stable")
        known = np.frombuffer(self._known, np.int8) if self._known else np.zeros(0, np.int8)
        return Pairs(
            pair=pair[order],
            prompt=_int64(self._prompt)[order],
            candidate_a=_int64(self._candidate_a)[order],
            candidate_b=_int64(self._candidate_b)[order],
            known=known[order],
        )


def _int64(values: array) -> np.ndarray:
    return np.frombuffer(values, np.int64) if values else np.zeros(0, np.int64)


class Posteriors:
    """Per pair: the label a model gave it and its confidence, found by pair id."""

    def __init__(self, pair: np.ndarray, label: np.ndarray, confidence: np.ndarray) -> None:
        order = np.argsort(pair, kind="stable")
        self.pair = np.ascontiguousarray(pair[order], np.int64)
        self.label = np.ascontiguousarray(label[order], np.int8)
        self.confidence = np.ascontiguousarray(confidence[order], np.float64)

    @classmethod
    def empty(cls) -> Posteriors:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0))

    @classmethod
    def from_probabilities(
        cls, pair: np.ndarray, probabilities: np.ndarray, *, tie_rule: str
    ) -> Posteriors:
        """`probabilities`: one row per pair, one column per label of LABELS. The label is the
        most probable one (equal leaders: a tie, or none under `drop`); its confidence is that
        probability."""
        if len(pair) == 0:
            return cls.empty()
        probabilities = np.nan_to_num(np.asarray(probabilities, np.float64))
        best = probabilities.argmax(axis=1)
        top = probabilities[np.arange(len(pair)), best]
        leaders = (top[:, None] - probabilities <= TIE_EPSILON).sum(axis=1)
        label = best.astype(np.int8)
        label[leaders > 1] = CODES["tie"] if tie_rule == "tie" else NO_LABEL
        return cls(pair, label, np.round(top, CONFIDENCE_DIGITS))

    def get(self, pair_id: int) -> tuple[str | None, float]:
        """(label or None, confidence) of a pair; (None, 0.0) when the model has none for it."""
        at = int(np.searchsorted(self.pair, pair_id))
        if at == len(self.pair) or self.pair[at] != pair_id or self.label[at] == NO_LABEL:
            return None, 0.0
        return LABELS[self.label[at]], float(self.confidence[at])

    def __len__(self) -> int:
        return len(self.pair)
