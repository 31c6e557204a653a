"""The per-judgment votes of an export, beside its files: one row per counted judgment, for
those who want each annotator's answer rather than the aggregated label. `votes.parquet` in
the Parquet and WebDataset folders, `votes.jsonl` in the JSON ones (a Hugging Face folder is
read by one builder, so the votes config must be in the folder's own file type; the WebDataset
card leaves it out: `load_dataset("parquet", data_files="votes.parquet")`).

Columns: `pair_id, split, annotator_id, answer, candidate_id, left_side, judged_at`. `answer` is
`a | b | tie | both_wrong | skip` with a and b in the folder's side order: image 0 and image 1
of the export (`sides.py`), except in the canonical JSONL folder (`shown=False`), where a is the
record's first candidate. `candidate_id` is the candidate voted for (null unless a or b);
`left_side` the side (same order) that the annotator saw on the left; `judged_at` UTC
(`timestamp[ns]` in Parquet, ISO 8601 text in JSON lines).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training_bridge.datasets.exporters.sides import side_shown, swapped_mask

PARQUET_NAME = "votes.parquet"
JSONL_NAME = "votes.jsonl"
JSONL_SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("split", pa.string()),
        ("annotator_id", pa.int64()),
        ("answer", pa.string()),
        ("candidate_id", pa.int64()),
        ("left_side", pa.string()),
        ("judged_at", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("split", pa.string()),
        ("annotator_id", pa.int64()),
        ("answer", pa.string()),
        ("candidate_id", pa.int64()),
        ("left_side", pa.string()),
        ("judged_at", pa.timestamp("ns")),
    ]
)


@dataclass(frozen=True)
class VoteRow:
    pair_id: int
    annotator_id: int
    answer: str  # a / b / tie / both_wrong / skip, stored sides
    left_is_a: bool
    judged_at: datetime
    candidate_a_id: int
    candidate_b_id: int
    split: str


def _rows(rows: list[VoteRow], *, shown: bool) -> list[dict]:
    swapped = swapped_mask(np.array([row.pair_id for row in rows], np.int64))
    if not shown:
        swapped[:] = False
    voted = {"a": "candidate_a_id", "b": "candidate_b_id"}
    return [
        {
            "pair_id": row.pair_id,
            "split": row.split,
            "annotator_id": row.annotator_id,
            "answer": side_shown(row.answer, bool(flip)),
            "candidate_id": getattr(row, voted[row.answer]) if row.answer in voted else None,
            "left_side": side_shown("a" if row.left_is_a else "b", bool(flip)),
            "judged_at": row.judged_at.astimezone(UTC).replace(tzinfo=None),
        }
        for row, flip in zip(rows, swapped, strict=True)
    ]


def write_parquet(path: Path, chunks: Iterable[list[VoteRow]], *, shown: bool) -> int:
    """Write the votes to `path`, a row group per chunk; returns the number of votes."""
    count = 0
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        for rows in chunks:
            if rows:
                writer.write_table(pa.Table.from_pylist(_rows(rows, shown=shown), schema=SCHEMA))
                count += len(rows)
        if count == 0:
            writer.write_table(SCHEMA.empty_table())
    return count


def write_jsonl(path: Path, chunks: Iterable[list[VoteRow]], *, shown: bool) -> int:
    """Write the votes to `path` as JSON lines; returns the number of votes."""
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for rows in chunks:
            for row in _rows(rows, shown=shown):
                row["judged_at"] = row["judged_at"].isoformat(timespec="microseconds") + "Z"
                out.write(json.dumps(row) + "\n")
                count += 1
    return count
