"""Pick-a-Pic-compatible Parquet, sharded by split: what PickScore-style code and
`datasets.load_dataset("parquet", ...)` read unchanged.

Columns: `caption, jpg_0, jpg_1` (image bytes, as stored: PNG or WebP; null without images),
`label_0, label_1` (1/0, 0/1 or 0.5/0.5), `model_0, model_1, ranking_id` (the pair id),
`user_id` (the lowest id among the pair's annotators), `num_example_per_prompt,
image_0_uid, image_1_uid` (content sha256), `best_image_uid` ("" unless a winner),
`has_label` (false for both-wrong, which gets 0.5/0.5), `are_different, created_at` (the last
counted judgment), then ours: `split, pair_id, pair_kind, label, agreement, num_votes,
votes_*, intended_winner, perturbation_type, num_perturbations, relations, prompt_id,
group_key, image_0_key, image_1_key, annotator_ids`.

Records are parsed in C++ by pyarrow's JSON reader (an explicit schema picks the fields) and
the columns derived with pyarrow compute, so no per-record Python runs without image bytes.
Files: `<split>-<shard>.parquet`; a shard closes at a row or byte limit, so boundaries depend
on the records alone.
"""

from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from training_bridge.exporters.interface import (
    SPLITS,
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
    chunks_rebatched,
)

# The record columns this exporter reads: the canonical lines only.
COLUMNS = ("canonical",)
CHUNK_RECORDS = 2_000
DERIVE_RECORDS = 20_000
CHUNK_RECORDS_WITH_IMAGES = 32  # 64 images in memory at most
ROW_GROUP_ROWS = 20_000
ROW_GROUP_BYTES = 8 * 1024 * 1024
MAX_ROWS_PER_SHARD = 500_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024

_VOTES = ("a", "b", "tie", "both_wrong", "skip")
_CANDIDATE = pa.struct([("key", pa.string()), ("sha256", pa.string()), ("model", pa.string())])
INPUT_SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("agreement", pa.float64()),
        ("num_votes", pa.int64()),
        ("votes", pa.struct([(name, pa.int64()) for name in _VOTES])),
        ("intended_winner", pa.string()),
        ("perturbation_type", pa.string()),
        ("num_perturbations", pa.int64()),
        ("split", pa.string()),
        ("annotator_ids", pa.list_(pa.int64())),
        ("judged_at", pa.string()),
        ("num_example_per_prompt", pa.int64()),
        (
            "prompt",
            pa.struct(
                [
                    ("id", pa.int64()),
                    ("text", pa.string()),
                    ("group_key", pa.string()),
                    ("relations", pa.list_(pa.string())),
                ]
            ),
        ),
        ("candidates", pa.list_(_CANDIDATE)),
    ]
)
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
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("split", pa.string()),
        ("pair_id", pa.int64()),
        ("pair_kind", pa.string()),
        ("label", pa.string()),
        ("agreement", pa.float64()),
        ("num_votes", pa.int64()),
        *[(f"votes_{name}", pa.int64()) for name in _VOTES],
        ("intended_winner", pa.string()),
        ("perturbation_type", pa.string()),
        ("num_perturbations", pa.int64()),
        ("relations", pa.list_(pa.string())),
        ("prompt_id", pa.int64()),
        ("group_key", pa.string()),
        ("image_0_key", pa.string()),
        ("image_1_key", pa.string()),
        ("annotator_ids", pa.list_(pa.int64())),
    ]
)

DICTIONARY_COLUMNS = [
    "model_0", "model_1", "split", "pair_kind", "label", "intended_winner", "perturbation_type",
]  # fmt: skip
STATISTICS_COLUMNS = [f.name for f in SCHEMA if not pa.types.is_binary(f.type)]


def records_table(lines: list[str]) -> pa.Table:
    """Parse canonical lines into a table of the fields the Parquet columns need."""
    data = "\n".join(lines).encode()
    return pa_json.read_json(
        io.BytesIO(data),
        # One block (a block must hold the longest record), parsed on this thread: extra
        # parser threads buy little on a busy worker and each keeps its own arena.
        read_options=pa_json.ReadOptions(block_size=len(data) + 1, use_threads=False),
        parse_options=pa_json.ParseOptions(
            explicit_schema=INPUT_SCHEMA, unexpected_field_behavior="ignore"
        ),
    )


def pickapic_table(records: pa.Table) -> pa.Table:
    """The Parquet columns of parsed records; `jpg_0`/`jpg_1` are left null here."""
    label = records["label"]
    candidates = records["candidates"]
    first = pc.list_element(candidates, 0)
    second = pc.list_element(candidates, 1)
    uid_0 = pc.struct_field(first, "sha256")
    uid_1 = pc.struct_field(second, "sha256")
    key_0 = pc.struct_field(first, "key")
    key_1 = pc.struct_field(second, "key")
    is_a = pc.equal(label, "a")
    is_b = pc.equal(label, "b")
    half = pa.scalar(0.5)
    label_0 = pc.if_else(is_a, pa.scalar(1.0), pc.if_else(is_b, pa.scalar(0.0), half))
    label_1 = pc.if_else(is_a, pa.scalar(0.0), pc.if_else(is_b, pa.scalar(1.0), half))
    jpg_0 = jpg_1 = pa.nulls(len(records), pa.binary())
    prompt = records["prompt"]
    votes = records["votes"]
    columns = {
        "caption": pc.struct_field(prompt, "text"),
        "jpg_0": jpg_0,
        "jpg_1": jpg_1,
        "label_0": label_0,
        "label_1": label_1,
        "model_0": pc.struct_field(first, "model"),
        "model_1": pc.struct_field(second, "model"),
        "ranking_id": records["pair_id"],
        "user_id": pc.list_element(records["annotator_ids"], 0),
        "num_example_per_prompt": records["num_example_per_prompt"],
        "image_0_uid": uid_0,
        "image_1_uid": uid_1,
        "best_image_uid": pc.if_else(is_a, uid_0, pc.if_else(is_b, uid_1, pa.scalar(""))),
        "has_label": pc.not_equal(label, "both_wrong"),
        "are_different": pc.not_equal(uid_0, uid_1),
        "created_at": pc.cast(records["judged_at"], pa.timestamp("us", tz="UTC")),
        "split": records["split"],
        "pair_id": records["pair_id"],
        "pair_kind": records["kind"],
        "label": label,
        "agreement": records["agreement"],
        "num_votes": records["num_votes"],
        **{f"votes_{name}": pc.struct_field(votes, name) for name in _VOTES},
        "intended_winner": records["intended_winner"],
        "perturbation_type": records["perturbation_type"],
        "num_perturbations": records["num_perturbations"],
        "relations": pc.struct_field(prompt, "relations"),
        "prompt_id": pc.struct_field(prompt, "id"),
        "group_key": pc.struct_field(prompt, "group_key"),
        "image_0_key": key_0,
        "image_1_key": key_1,
        "annotator_ids": records["annotator_ids"],
    }
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def with_images(table: pa.Table, images: ImageReader) -> pa.Table:
    """The table with `jpg_0`/`jpg_1` filled from the storage (done per split, after routing,
    so image bytes are never copied by a filter)."""
    keys_0 = table.column("image_0_key").to_pylist()
    keys_1 = table.column("image_1_key").to_pylist()
    data = images(keys_0 + keys_1)
    table = table.set_column(
        SCHEMA.get_field_index("jpg_0"), "jpg_0", pa.array(data[: len(keys_0)], pa.binary())
    )
    return table.set_column(
        SCHEMA.get_field_index("jpg_1"), "jpg_1", pa.array(data[len(keys_0) :], pa.binary())
    )


class _ShardedWriter:
    """`<split>-00000.parquet`, `<split>-00001.parquet`, ... for one split.

    Rows are buffered into row groups of ROW_GROUP_ROWS rows (or ROW_GROUP_BYTES, with image
    bytes): few, large row groups write and read fast, and the boundaries depend on the
    records alone.
    """

    def __init__(self, split: str, sink: ArtifactSink) -> None:
        self.split = split
        self.sink = sink
        self.shard = -1
        self.rows = 0
        self.bytes = 0
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
        # Give the freed buffers back to the OS: arrow's allocator otherwise keeps them.
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
) -> None:
    # Parse small chunks (the JSON text is the bulky part), derive columns over larger batches
    # of parsed rows (compute calls cost per call), fetch image bytes per routed part.
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    batch = DERIVE_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    writers = {split: _ShardedWriter(split, sink) for split in SPLITS}
    parsed: list[pa.Table] = []
    parsed_rows = done = 0

    def route() -> None:
        table = pickapic_table(pa.concat_tables(parsed))
        parsed.clear()
        for split, writer in writers.items():
            part = table.filter(pc.equal(table["split"], split))
            if images is not None and part.num_rows:
                part = with_images(part, images)
            writer.write(part)
        progress(done)

    try:
        for lines in chunks_rebatched(records, size):
            parsed.append(records_table(lines))
            parsed_rows += len(lines)
            done += len(lines)
            if parsed_rows >= batch:
                route()
                parsed_rows = 0
        if parsed:
            route()
    except BaseException as error:
        for writer in writers.values():
            writer.close(error)
        raise
    for writer in writers.values():
        writer.close()
