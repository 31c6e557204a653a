"""Canonical records: the one JSON form of a dataset row, its line encoding and content hash.

A frozen version's content hash is the sha256 of its canonical JSONL (one `canonical_line`
per record, in position order, each followed by a newline), so the canonical JSONL export of a
version hashes to the version's content hash. Records carry no version id or time of freezing:
freezing the same spec over the same data gives the same bytes and the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from training_bridge.datasets.aggregation.labels import Aggregate


@dataclass(frozen=True)
class PromptRow:
    id: int
    text: str
    structure: Any
    group_key: str
    relation_keys: str
    object_keys: str
    perturbation_type: str
    num_perturbations: int
    parent_id: int | None
    tier: int


@dataclass(frozen=True)
class CandidateRow:
    id: int
    key: str
    sha256: str
    model: str
    seed: int
    prompt_id: int
    prompt_text: str
    perturbation_type: str
    num_perturbations: int
    campaign_id: int
    width: int | None
    height: int | None


@dataclass(frozen=True)
class PairRow:
    id: int
    kind: str
    queue_id: int
    is_gold: bool
    prompt: PromptRow
    candidate_a: CandidateRow
    candidate_b: CandidateRow
    intended_winner_id: int | None


def keys_split(keys: str) -> list[str]:
    return [key for key in keys.split("|") if key]


def _side(pair: PairRow, candidate_id: int | None) -> str | None:
    if candidate_id is None:
        return None
    return "a" if candidate_id == pair.candidate_a.id else "b"


def pair_perturbation(pair: PairRow) -> tuple[str, int]:
    """What separates the pair's prompts: the perturbed side's type and count, else 'original'."""
    best = max(
        (pair.candidate_a, pair.candidate_b, pair.prompt),
        key=lambda row: row.num_perturbations,
    )
    return (best.perturbation_type or "original", best.num_perturbations)


def _candidate_json(pair: PairRow, candidate: CandidateRow) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "key": candidate.key,
        "sha256": candidate.sha256,
        "model": candidate.model,
        "seed": candidate.seed,
        "campaign_id": candidate.campaign_id,
        "prompt_id": candidate.prompt_id,
        # The perturbed prompt an image was rendered from; null when it is the judged prompt.
        "prompt_text": None if candidate.prompt_id == pair.prompt.id else candidate.prompt_text,
        "perturbation_type": candidate.perturbation_type or "original",
        "num_perturbations": candidate.num_perturbations,
        "width": candidate.width,
        "height": candidate.height,
    }


def record_build(
    *,
    pair: PairRow,
    aggregate: Aggregate,
    split: str,
    annotator_ids: list[int],
    judged_at: datetime,
    num_example_per_prompt: int,
) -> dict[str, Any]:
    """The canonical record of one labelled pair."""
    intended = _side(pair, pair.intended_winner_id)
    perturbation_type, num_perturbations = pair_perturbation(pair)
    prompt = pair.prompt
    return {
        "pair_id": pair.id,
        "kind": pair.kind,
        "queue_id": pair.queue_id,
        "gold": pair.is_gold,
        "prompt": {
            "id": prompt.id,
            "text": prompt.text,
            "structure": prompt.structure,
            "group_key": prompt.group_key,
            "relations": keys_split(prompt.relation_keys),
            "objects": keys_split(prompt.object_keys),
            "perturbation_type": prompt.perturbation_type or "original",
            "num_perturbations": prompt.num_perturbations,
            "parent_id": prompt.parent_id,
            "tier": prompt.tier,
        },
        "candidates": [
            _candidate_json(pair, pair.candidate_a),
            _candidate_json(pair, pair.candidate_b),
        ],
        "label": aggregate.label,
        "votes": aggregate.votes,
        "num_votes": aggregate.num_votes,
        "agreement": aggregate.agreement,
        # The aggregator's confidence in the label (labels.Aggregate); 1 for a known answer.
        "confidence": aggregate.confidence,
        "settled": aggregate.settled,
        "intended_winner": intended,
        "agrees_with_intended": None if intended is None else aggregate.label == intended,
        "perturbation_type": perturbation_type,
        "num_perturbations": num_perturbations,
        "split": split,
        "annotator_ids": sorted(annotator_ids),
        "judged_at": judged_at.astimezone(UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
        "num_example_per_prompt": num_example_per_prompt,
    }


def canonical_line(record: dict[str, Any]) -> str:
    """The record as one line of JSON: sorted keys, no spaces, UTF-8 text, no newline."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ContentHasher:
    """sha256 over the canonical JSONL of a version, fed one line at a time."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0

    def add(self, line: str) -> None:
        self._sha.update(line.encode())
        self._sha.update(b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class Composition:
    """Counts of a version's records for its manifest and the admin's charts."""

    DIMENSIONS = (
        "split",
        "label",
        "kind",
        "relation",
        "perturbation_type",
        "num_perturbations",
        "config",
        "split_label",
    )

    CONFIDENCE_BINS = 10

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {name: Counter() for name in self.DIMENSIONS}
        self.judgments_by_annotator: Counter = Counter()
        self.records = 0
        self.confidence_bins = [0] * self.CONFIDENCE_BINS
        self.confidence_sum = 0.0
        self.confidence_min = 1.0
        self.settled = 0

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        counts = self.counts
        counts["split"][record["split"]] += 1
        counts["label"][record["label"]] += 1
        counts["kind"][record["kind"]] += 1
        counts["split_label"][f"{record['split']}/{record['label']}"] += 1
        for relation in record["prompt"]["relations"]:
            counts["relation"][relation] += 1
        counts["perturbation_type"][record["perturbation_type"]] += 1
        counts["num_perturbations"][str(record["num_perturbations"])] += 1
        for candidate in record["candidates"]:
            counts["config"][candidate["model"]] += 1
        for annotator_id in record["annotator_ids"]:
            self.judgments_by_annotator[str(annotator_id)] += 1
        confidence = record["confidence"]
        self.confidence_bins[
            min(int(confidence * self.CONFIDENCE_BINS), self.CONFIDENCE_BINS - 1)
        ] += 1
        self.confidence_sum += confidence
        self.confidence_min = min(self.confidence_min, confidence)
        self.settled += record["settled"]

    def confidence_json(self) -> dict[str, Any]:
        """The records' confidences: mean, minimum, a histogram in tenths, settled records."""
        width = 1 / self.CONFIDENCE_BINS
        return {
            "mean": round(self.confidence_sum / self.records, 6) if self.records else None,
            "min": round(self.confidence_min, 6) if self.records else None,
            "histogram": {
                f"{i * width:.1f}-{(i + 1) * width:.1f}": count
                for i, count in enumerate(self.confidence_bins)
            },
            "settled": self.settled,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "confidence": self.confidence_json(),
            "counts": {name: dict(sorted(c.items())) for name, c in self.counts.items()},
            "annotators": {
                "count": len(self.judgments_by_annotator),
                "judgments": dict(
                    sorted(self.judgments_by_annotator.items(), key=lambda kv: int(kv[0]))
                ),
            },
        }
