"""The per-judgment votes of an export, `votes.parquet` beside its files: one row per counted
judgment, for those who want each annotator's answer rather than the aggregated label.

Columns: `pair_id, split, annotator_id, answer, candidate_id, left_side, judged_at`. `answer` is
`a | b | tie | both_wrong | skip` with a and b in the folder's side order: image 0 and image 1
of the export (`sides.py`), except in the canonical JSONL folder (`shown=False`), where a is the
record's first candidate. `candidate_id` is the candidate voted for (null unless a or b);
`left_side` the side (same order) that the annotator saw on the left; `judged_at` UTC,
`timestamp[ns]`.

A version's votes are stored once, in stored side order (`StoredWriter`, a row group per
chunk): by the freeze, from the votes it counted, or, for a version frozen before it did so, by
its first export from the database. Each folder's table is made from that file with arrow
compute, a row group at a time (`folder_write`): the database read costs far more than an
export (bench/export/RESULTS.md). Arrays are built from buffers, never from Python values one by one
(pyarrow would import pandas for that: memory an export process does not carry).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training_bridge.datasets.exporters.arrow_values import bool_array, int64_array, literal
from training_bridge.datasets.exporters.sides import swapped_mask

FILE_NAME = "votes.parquet"
ANSWERS = ("a", "b", "tie", "both_wrong", "skip")
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
_SPLITS = ("train", "val", "test")


def _strings(values: tuple[str, ...]) -> pa.Array:
    data = "".join(values).encode()
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum([len(v.encode()) for v in values], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


_ANSWER_STRINGS = _strings(ANSWERS)
_SPLIT_STRINGS = _strings(_SPLITS)


@dataclass
class VoteColumns:
    """A chunk of votes, column by column (stored sides)."""

    pair_id: array = field(default_factory=lambda: array("q"))
    split: array = field(default_factory=lambda: array("b"))
    annotator_id: array = field(default_factory=lambda: array("q"))
    answer: array = field(default_factory=lambda: array("b"))
    candidate_id: array = field(default_factory=lambda: array("q"))
    left_is_a: array = field(default_factory=lambda: array("b"))
    judged_at_ns: array = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.pair_id)

    def add(
        self,
        *,
        pair_id: int,
        split: str,
        annotator_id: int,
        answer: str,
        candidate_id: int | None,
        left_is_a: bool,
        judged_at_ns: int,
    ) -> None:
        self.pair_id.append(pair_id)
        self.split.append(_SPLITS.index(split))
        self.annotator_id.append(annotator_id)
        self.answer.append(ANSWERS.index(answer))
        self.candidate_id.append(-1 if candidate_id is None else candidate_id)
        self.left_is_a.append(left_is_a)
        self.judged_at_ns.append(judged_at_ns)

    def table(self) -> pa.Table:
        count = len(self.pair_id)
        candidate = np.frombuffer(self.candidate_id, np.int64) if count else np.zeros(0, np.int64)
        valid = np.packbits(candidate >= 0, bitorder="little")
        left = np.frombuffer(self.left_is_a, np.int8).astype(bool)
        columns = [
            int64_array(np.frombuffer(self.pair_id, np.int64)),
            _SPLIT_STRINGS.take(int64_array(np.frombuffer(self.split, np.int8))),
            int64_array(np.frombuffer(self.annotator_id, np.int64)),
            _ANSWER_STRINGS.take(int64_array(np.frombuffer(self.answer, np.int8))),
            pa.Array.from_buffers(
                pa.int64(), count, [pa.py_buffer(valid), pa.py_buffer(candidate.copy())]
            ),
            _ANSWER_STRINGS.take(int64_array(np.where(left, 0, 1))),
            pa.Array.from_buffers(
                pa.timestamp("ns"),
                count,
                [None, pa.py_buffer(np.frombuffer(self.judged_at_ns, np.int64).copy())],
            ),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


class StoredWriter:
    """The version's votes in stored side order, a row group per chunk written."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.count = 0

    def write(self, chunk: VoteColumns) -> None:
        table = chunk.table()
        if table.num_rows:
            self._writer.write_table(table)
            self.count += table.num_rows

    def close(self) -> int:
        """Finish the file (an empty table when no vote was written); returns the count."""
        if self.count == 0:
            self._writer.write_table(SCHEMA.empty_table())
        self._writer.close()
        return self.count


def stored_write(path: Path, chunks: Iterable[VoteColumns]) -> int:
    """The version's votes from chunks, a row group each; returns the count."""
    writer = StoredWriter(path)
    try:
        for chunk in chunks:
            writer.write(chunk)
    finally:
        count = writer.close()
    return count


def _flipped(column: pa.Array, swapped: pa.Array) -> pa.Array:
    a, b = literal("a", pa.string()), literal("b", pa.string())
    other = pc.if_else(pc.equal(column, a), b, pc.if_else(pc.equal(column, b), a, column))
    return pc.if_else(swapped, other, column)


def folder_write(path: Path, stored: Path, *, shown: bool) -> None:
    """A folder's votes table from the stored one: a / b in the folder's side order.

    A row group at a time, on this thread: arrow's reader threads (one allocator heap each) put
    15-20 MB more, and more variably, on the export's peak RSS (bench/export/RESULTS.md)."""
    source = pq.ParquetFile(stored)
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        for group in range(source.num_row_groups):
            table = source.read_row_group(group, use_threads=False)
            if shown and table.num_rows:
                pair_ids = table.column("pair_id").combine_chunks()
                ids = np.frombuffer(pair_ids.buffers()[1], np.int64, len(pair_ids))
                swapped = bool_array(swapped_mask(ids))
                for name in ("answer", "left_side"):
                    at = SCHEMA.get_field_index(name)
                    column = _flipped(table.column(name).combine_chunks(), swapped)
                    table = table.set_column(at, SCHEMA.field(at), column)
            writer.write_table(table)
