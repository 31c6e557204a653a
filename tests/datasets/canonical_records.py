"""Canonical records as `record_build` writes them, for the Parquet exporter's tests: one
builder with keyword overrides, and a set of awkward ones (escapes, keys like ours inside the
prompt's structure, non-ASCII text, empty lists, nulls, every label, a settled answer, a
confidence written in exponent form)."""

from datetime import UTC, datetime, timedelta

from training_bridge.datasets.aggregation.labels import Aggregate
from training_bridge.datasets.aggregation.records import (
    CandidateRow,
    PairRow,
    PromptRow,
    canonical_line,
    record_build,
)

STRUCTURE = {
    "objects": [{"id": "o1", "name": "cat", "attributes": {}}],
    "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}],
}


def record(
    pair_id: int,
    *,
    text: str = "a small cat to the left of a large dog",
    structure: object = STRUCTURE,
    relation_keys: str = "|left_of|",
    label: str = "a",
    intended: str | None = None,
    perturbed_text: str | None = None,
    agreement: float = 2 / 3,
    confidence: float = 0.873421,
    settled: bool = False,
    annotators: tuple[int, ...] = (9, 3, 5),
    split: str = "train",
    size: int | None = 256,
) -> dict:
    """A canonical record as `record_build` writes it."""
    prompt = PromptRow(
        id=pair_id * 10, text=text, structure=structure, group_key=f"g{pair_id:031d}",
        relation_keys=relation_keys, object_keys="|cat|dog|", perturbation_type="",
        num_perturbations=0, parent_id=None, tier=2,
    )  # fmt: skip

    def candidate(side: int, prompt_id: int, prompt_text: str) -> CandidateRow:
        sha = f"{pair_id:032x}{side:032x}"
        return CandidateRow(
            id=pair_id * 2 + side, key=f"candidates/{sha[:2]}/{sha}.png", sha256=sha,
            model=f"model-{side}", seed=7, prompt_id=prompt_id, prompt_text=prompt_text,
            perturbation_type="swap" if prompt_id != prompt.id else "",
            num_perturbations=int(prompt_id != prompt.id), campaign_id=1, width=size,
            height=size,
        )  # fmt: skip

    first = candidate(0, prompt.id, text)
    second = (
        candidate(1, prompt.id + 1, perturbed_text)
        if perturbed_text is not None
        else candidate(1, prompt.id, text)
    )
    winner = {"a": first.id, "b": second.id, None: None}[intended]
    pair = PairRow(
        id=pair_id, kind="counterfactual" if winner else "same_prompt", queue_id=1,
        is_gold=False, prompt=prompt, candidate_a=first, candidate_b=second,
        intended_winner_id=winner,
    )  # fmt: skip
    votes = {"a": 2, "b": 1, "tie": 0, "both_wrong": 0, "skip": 0}
    return record_build(
        pair=pair,
        aggregate=Aggregate(
            label=label,
            votes=votes,
            agreement=agreement,
            num_votes=3,
            confidence=confidence,
            settled=settled,
        ),
        split=split,
        annotator_ids=list(annotators),
        judged_at=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(microseconds=pair_id % 10**9),
        num_example_per_prompt=2,
    )


def awkward_lines() -> list[str]:
    """Records that stress the byte reader: keys like ours inside `structure`, brackets,
    colons and commas in strings, non-ASCII text, empty lists, nulls, every label."""
    records = [
        record(1),
        record(2, label="b", intended="b", split="val", perturbed_text="a dog: left, of [a] cat"),
        record(3, label="tie", intended="a", split="test", agreement=0.5, size=None),
        record(4, label="both_wrong", relation_keys="", annotators=(42,), agreement=1.0),
        record(5, text="un café à Zürich, 東京 — «quoted» ✓", split="val"),
        record(
            6,
            structure={
                "text": "not the caption",
                "split": "val",
                "tier": 9,
                "votes": {"a": 99, "b": 0, "both_wrong": 0, "skip": 0, "tie": 0},
                "objects": [{"text": "] } , : [ {", "relations": []}],
                "list": [1, "x", None],
            },
        ),  # fmt: skip
        record(7, structure=None, split="test"),
        record(2**40, text="", split="train", annotators=(1, 2, 3, 4, 5, 6)),
        record(9, label="b", agreement=1 / 3, confidence=1.0, settled=True, split="test"),
        record(10, label="a", confidence=1e-07, split="test"),
    ]
    return [canonical_line(record) for record in records]
