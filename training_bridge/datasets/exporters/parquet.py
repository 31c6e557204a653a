"""Pick-a-Pic-compatible Parquet, sharded by split: what PickScore-style code and
`datasets.load_dataset("parquet", ...)` read unchanged.

Columns: `caption, jpg_0, jpg_1` (image bytes, as stored: PNG or WebP; null without images),
`label_0, label_1` (1/0, 0/1 or 0.5/0.5), `model_0, model_1, ranking_id` (the pair id),
`user_id` (NOT the judging user of one judgment as in Pick-a-Pic: a row is a pair with its
aggregated label, and `user_id` is the lowest id among its counted annotators; each judgment
with its annotator is in the export folder's votes table), `num_example_per_prompt,
image_0_uid, image_1_uid` (content sha256), `best_image_uid` ("" unless a winner),
`has_label` (false for both-wrong, which gets 0.5/0.5), `are_different, created_at` (the last
counted judgment, UTC, `timestamp[ns]` as in Pick-a-Pic v2), `image_0_url, image_1_url` ("" when
the bytes are embedded, else the image's storage URL), then ours: `split, pair_id, pair_kind,
label, agreement, confidence, num_votes, votes_*, intended_winner, perturbation_type,
num_perturbations, relations, prompt_id, group_key, image_0_key, image_1_key, annotator_ids,
sides_swapped`, and last `__index_level_0__` (the row's number in its split: Pick-a-Pic v2's
pandas index column, which PickScore's `limit_examples_per_prompt` drops). `confidence` is the
aggregator's confidence in the label (its posterior for a label model; 1 for a settled or gold
answer; null for versions frozen before records carried it).

Sides are shown in the order of `sides.py` (a hash of the pair id): image 0 is the stored
candidate b where `sides_swapped`, and every positional column (`jpg_*`, `label_*`, `model_*`,
`image_*`, `label`, `votes_a`/`votes_b`, `intended_winner`) follows the shown order.

The fields are read from the canonical lines' bytes by `canonical_scan.Scan` (numpy over a
chunk; pyarrow's JSON reader takes the lines it cannot read): parsing every line with the JSON
reader costs too much CPU for the export figure of bench/export/RESULTS.md. Each chunk's rows
are routed to their split, and the columns are derived with pyarrow compute: no per-record
Python runs without image bytes. Files: `<split>-<shard>.parquet`; a shard closes at a row or
byte limit, so boundaries depend on the records alone.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training_bridge.datasets.exporters.arrow_values import bool_array, int64_array, literal
from training_bridge.datasets.exporters.canonical_parsed import fields_parsed
from training_bridge.datasets.exporters.canonical_scan import VOTES, Scan
from training_bridge.datasets.exporters.interface import (
    SPLITS,
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
    chunks_rebatched,
)
from training_bridge.datasets.exporters.sides import swapped_mask

# The record columns this exporter reads: the canonical lines only.
COLUMNS = ("canonical",)
CHUNK_RECORDS = 2_500  # records per query and per scan (bench/export/RESULTS.md: peak RSS)
CHUNK_RECORDS_WITH_IMAGES = 32  # 64 images in memory at most
ROW_GROUP_ROWS = 20_000
ROW_GROUP_BYTES = 8 * 1024 * 1024
MAX_ROWS_PER_SHARD = 500_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024

SCHEMA = pa.schema(
    [
        ("caption", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("model_0", pa.string()),
        ("model_1", pa.string()),
        ("ranking_id", pa.int64()),
        ("user_id", pa.int64()),
        ("num_example_per_prompt", pa.int64()),
        ("image_0_uid", pa.string()),
        ("image_1_uid", pa.string()),
        ("best_image_uid", pa.string()),
        ("has_label", pa.bool_()),
        ("are_different", pa.bool_()),
        ("created_at", pa.timestamp("ns")),
        ("image_0_url", pa.string()),
        ("image_1_url", pa.string()),
        ("split", pa.string()),
        ("pair_id", pa.int64()),
        ("pair_kind", pa.string()),
        ("label", pa.string()),
        ("agreement", pa.float64()),
        ("confidence", pa.float64()),
        ("num_votes", pa.int64()),
        *[(f"votes_{name}", pa.int64()) for name in VOTES],
        ("intended_winner", pa.string()),
        ("perturbation_type", pa.string()),
        ("num_perturbations", pa.int64()),
        ("relations", pa.list_(pa.string())),
        ("prompt_id", pa.int64()),
        ("group_key", pa.string()),
        ("image_0_key", pa.string()),
        ("image_1_key", pa.string()),
        ("annotator_ids", pa.list_(pa.int64())),
        ("sides_swapped", pa.bool_()),
        ("__index_level_0__", pa.int64()),
    ]
)
INDEX_COLUMN = "__index_level_0__"

DICTIONARY_COLUMNS = [
    "model_0", "model_1", "split", "pair_kind", "label", "intended_winner", "perturbation_type",
]  # fmt: skip
STATISTICS_COLUMNS = [f.name for f in SCHEMA if not pa.types.is_binary(f.type)]


def pickapic_table(fields: dict[str, pa.Array], *, image_url_prefix: str | None) -> pa.Table:
    """The Parquet columns of records' fields, the two sides in shown order (`sides.py`).

    `jpg_0`/`jpg_1` are left null and `__index_level_0__` zero here (the writer numbers the
    rows). `image_url_prefix` None: images are embedded and the URL columns are "".
    """
    swapped = bool_array(swapped_mask(_numpy(fields["pair_id"])))

    def shown(first: pa.Array, second: pa.Array) -> tuple[pa.Array, pa.Array]:
        return pc.if_else(swapped, second, first), pc.if_else(swapped, first, second)

    label = _side_shown(fields["label"], swapped)
    key_0, key_1 = shown(fields["key_0"], fields["key_1"])
    uid_0, uid_1 = shown(fields["uid_0"], fields["uid_1"])
    model_0, model_1 = shown(fields["model_0"], fields["model_1"])
    votes_a, votes_b = shown(fields["votes_a"], fields["votes_b"])
    is_a = pc.equal(label, literal("a", pa.string()))
    is_b = pc.equal(label, literal("b", pa.string()))
    one, zero, half = (literal(value, pa.float64()) for value in (1.0, 0.0, 0.5))
    count = len(label)
    jpg = pa.nulls(count, pa.binary())
    if image_url_prefix is None:
        offsets = pa.py_buffer(np.zeros(count + 1, np.int32))
        url_0 = url_1 = pa.Array.from_buffers(
            pa.string(), count, [None, offsets, pa.py_buffer(b"")]
        )
    else:
        prefix = literal(image_url_prefix, pa.string())
        empty = literal("", pa.string())
        url_0 = pc.binary_join_element_wise(prefix, key_0, empty)
        url_1 = pc.binary_join_element_wise(prefix, key_1, empty)
    columns = {
        "caption": fields["caption"],
        "jpg_0": jpg,
        "jpg_1": jpg,
        "label_0": pc.if_else(is_a, one, pc.if_else(is_b, zero, half)),
        "label_1": pc.if_else(is_a, zero, pc.if_else(is_b, one, half)),
        "model_0": model_0,
        "model_1": model_1,
        "ranking_id": fields["pair_id"],
        "user_id": pc.list_element(fields["annotator_ids"], literal(0, pa.int64())),
        "num_example_per_prompt": fields["num_example_per_prompt"],
        "image_0_uid": uid_0,
        "image_1_uid": uid_1,
        "best_image_uid": pc.if_else(
            is_a, uid_0, pc.if_else(is_b, uid_1, literal("", pa.string()))
        ),
        "has_label": pc.not_equal(label, literal("both_wrong", pa.string())),
        "are_different": pc.not_equal(uid_0, uid_1),
        "created_at": pc.cast(
            pc.cast(fields["judged_at"], pa.timestamp("us", tz="UTC")), pa.timestamp("ns")
        ),
        "image_0_url": url_0,
        "image_1_url": url_1,
        "split": fields["split"],
        "pair_id": fields["pair_id"],
        "pair_kind": fields["kind"],
        "label": label,
        "agreement": fields["agreement"],
        "confidence": fields["confidence"],
        "num_votes": fields["num_votes"],
        **{f"votes_{name}": fields[f"votes_{name}"] for name in VOTES},
        "votes_a": votes_a,
        "votes_b": votes_b,
        "intended_winner": _side_shown(fields["intended_winner"], swapped),
        "perturbation_type": fields["perturbation_type"],
        "num_perturbations": fields["num_perturbations"],
        "relations": fields["relations"],
        "prompt_id": fields["prompt_id"],
        "group_key": fields["group_key"],
        "image_0_key": key_0,
        "image_1_key": key_1,
        "annotator_ids": fields["annotator_ids"],
        "sides_swapped": swapped,
        INDEX_COLUMN: int64_array(np.zeros(count, np.int64)),
    }
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def _numpy(values: pa.Array) -> np.ndarray:
    """An int64 arrow array without nulls as numpy (a view of its buffer)."""
    return np.frombuffer(values.buffers()[1], np.int64, len(values), values.offset * 8)


def _side_shown(sides: pa.Array, swapped: pa.Array) -> pa.Array:
    """a <-> b where the sides are swapped (`sides.side_shown` over a column); other values
    and nulls as they are."""
    a, b = literal("a", pa.string()), literal("b", pa.string())
    flipped = pc.if_else(pc.equal(sides, a), b, pc.if_else(pc.equal(sides, b), a, sides))
    return pc.if_else(swapped, flipped, sides)


def split_tables(lines: list[str], *, image_url_prefix: str | None = None) -> dict[str, pa.Table]:
    """The Pick-a-Pic rows of canonical lines, per split, in the lines' order.

    Lines are read by `Scan`; the few it cannot read (an escaped character, an unexpected
    shape) and any chunk whose numbers do not cast are parsed by pyarrow's JSON reader. Rows
    are routed to their split before their columns are built, so no column is filtered.
    """
    scan = Scan(lines)
    parts: dict[str, list[tuple[np.ndarray, pa.Table]]] = {split: [] for split in SPLITS}
    slow = np.flatnonzero(~scan.good)
    try:
        for name in SPLITS:
            rows = scan.split_rows(name)
            if len(rows):
                table = pickapic_table(scan.fields(rows), image_url_prefix=image_url_prefix)
                parts[name].append((rows, table))
    except pa.ArrowInvalid:
        parts = {split: [] for split in SPLITS}
        slow = np.arange(len(lines))
    if len(slow):
        table = pickapic_table(
            fields_parsed([lines[i] for i in slow]), image_url_prefix=image_url_prefix
        )
        for name in SPLITS:
            picked = _indices(pc.equal(table["split"], literal(name, pa.string())))
            if len(picked):
                parts[name].append((slow[picked], table.take(int64_array(picked))))
    out = {}
    for name, found in parts.items():
        if len(found) == 1:
            out[name] = found[0][1]
        elif found:
            order = np.argsort(np.concatenate([rows for rows, _ in found]), kind="stable")
            out[name] = pa.concat_tables([t for _, t in found]).take(int64_array(order))
    return out


def _indices(mask: pa.ChunkedArray) -> np.ndarray:
    """Where a boolean column is true (null counts as false), as numpy positions."""
    found = pc.indices_nonzero(mask.combine_chunks())
    return np.frombuffer(found.buffers()[1], np.uint64, len(found), found.offset * 8).astype(
        np.int64
    )


def with_images(table: pa.Table, images: ImageReader) -> pa.Table:
    """The table with `jpg_0`/`jpg_1` filled from the storage (done per split, after routing,
    so image bytes are never copied by a filter)."""
    keys_0 = table.column("image_0_key").to_pylist()
    keys_1 = table.column("image_1_key").to_pylist()
    data = images(keys_0 + keys_1)
    for name, part in (("jpg_0", data[: len(keys_0)]), ("jpg_1", data[len(keys_0) :])):
        table = table.set_column(SCHEMA.get_field_index(name), name, _binary(part))
    return table


def _binary(values: list[bytes]) -> pa.Array | pa.ChunkedArray:
    """Image bytes as an arrow binary column (in chunks of under 2 GiB when they are more)."""
    chunks, first, size = [], 0, 0
    for index, value in enumerate(values):
        if size + len(value) >= 2**31 and index > first:
            chunks.append(_binary_chunk(values[first:index]))
            first, size = index, 0
        size += len(value)
    chunks.append(_binary_chunk(values[first:]))
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, pa.binary())


def _binary_chunk(values: list[bytes]) -> pa.Array:
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum([len(value) for value in values], out=offsets[1:])
    data = pa.py_buffer(b"".join(values))
    return pa.Array.from_buffers(
        pa.binary(), len(values), [None, pa.py_buffer(offsets.astype(np.int32)), data]
    )


class _ShardedWriter:
    """`<split>-00000.parquet`, `<split>-00001.parquet`, ... for one split.

    Rows are buffered into row groups of ROW_GROUP_ROWS rows (or ROW_GROUP_BYTES, with image
    bytes): few, large row groups write and read fast, and the boundaries depend on the
    records alone.
    """

    def __init__(self, split: str, sink: ArtifactSink, *, release: bool) -> None:
        self.split = split
        self.sink = sink
        self.release = release
        self.shard = -1
        self.rows = 0
        self.bytes = 0
        self.index = 0  # rows of the split written so far: `__index_level_0__`
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._stack: ExitStack | None = None
        self._writer: pq.ParquetWriter | None = None

    def _open(self) -> None:
        self.shard += 1
        self._stack = ExitStack()
        path: Path = self._stack.enter_context(
            self.sink.file(f"{self.split}-{self.shard:05d}.parquet")
        )
        self._writer = pq.ParquetWriter(
            path,
            SCHEMA,
            compression="zstd",
            # Dictionaries only where values repeat; none for image bytes, captions, ids.
            use_dictionary=DICTIONARY_COLUMNS,
            write_statistics=STATISTICS_COLUMNS,
        )
        self.rows = self.bytes = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        numbers = np.arange(self.index, self.index + table.num_rows, dtype=np.int64)
        self.index += table.num_rows
        at = SCHEMA.get_field_index(INDEX_COLUMN)
        table = table.set_column(at, SCHEMA.field(at), int64_array(numbers))
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._open()
        group = pa.concat_tables(self._pending)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._writer.write_table(group, row_group_size=group.num_rows)
        self.rows += group.num_rows
        self.bytes += group.nbytes
        del group
        if self.release:
            # Give the freed image bytes back to the OS: arrow's pool would keep them and the
            # process's peak would grow with them. Without images, reusing the pool costs
            # little memory and saves CPU (bench/export/RESULTS.md).
            pa.default_memory_pool().release_unused()
        if self.rows >= MAX_ROWS_PER_SHARD or self.bytes >= MAX_BYTES_PER_SHARD:
            self._close_shard()

    def _close_shard(self, error: BaseException | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            if error is None:
                self._stack.close()
            else:
                self._stack.__exit__(type(error), error, error.__traceback__)
            self._writer = None
            self._stack = None

    def close(self, error: BaseException | None = None) -> None:
        """Store the last shard, or with `error` drop the open one unstored."""
        if error is None:
            self._flush()
        else:
            self._pending = []
        self._close_shard(error)


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
    image_url_prefix: str = "",
) -> None:
    """`image_url_prefix`: without images, `image_<n>_url` is it followed by the image's
    storage key (with images the URL columns are "")."""
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    url_prefix = image_url_prefix if images is None else None
    writers = {split: _ShardedWriter(split, sink, release=images is not None) for split in SPLITS}
    done = 0
    try:
        for lines in chunks_rebatched(records, size):
            for split, part in split_tables(lines, image_url_prefix=url_prefix).items():
                if images is not None:
                    part = with_images(part, images)
                writers[split].write(part)
            done += len(lines)
            progress(done)
    except BaseException as error:
        for writer in writers.values():
            writer.close(error)
        raise
    for writer in writers.values():
        writer.close()
