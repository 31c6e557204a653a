"""Fields of canonical record lines parsed by pyarrow's JSON reader: what `canonical_scan` gives,
for any valid line (the scan's fallback, and the reference its tests compare with)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from training_bridge.datasets.exporters.arrow_values import literal
from training_bridge.datasets.exporters.canonical_scan import FIELDS, VOTES

_CANDIDATE = pa.struct([("key", pa.string()), ("sha256", pa.string()), ("model", pa.string())])
INPUT_SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("agreement", pa.float64()),
        ("confidence", pa.float64()),
        ("num_votes", pa.int64()),
        ("votes", pa.struct([(name, pa.int64()) for name in VOTES])),
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


def records_table(lines: list[str]) -> pa.Table:
    """Canonical lines parsed by pyarrow's JSON reader into the fields the columns need."""
    data = "\n".join(lines).encode()
    return pa_json.read_json(
        io.BytesIO(data),
        # One block (a block must hold the longest record), parsed on this thread.
        read_options=pa_json.ReadOptions(block_size=len(data) + 1, use_threads=False),
        parse_options=pa_json.ParseOptions(
            explicit_schema=INPUT_SCHEMA, unexpected_field_behavior="ignore"
        ),
    )


def fields_parsed(lines: list[str]) -> dict[str, pa.Array]:
    """The fields of canonical lines, parsed by pyarrow's JSON reader (any valid line)."""
    if not lines:
        return {field: pa.nulls(0, kind) for field, (_, kind) in FIELDS.items()}
    records = records_table(lines)
    candidates, prompt, votes = records["candidates"], records["prompt"], records["votes"]
    out = {}
    for side in (0, 1):
        candidate = pc.list_element(candidates, literal(side, pa.int64()))
        out[f"key_{side}"] = pc.struct_field(candidate, "key")
        out[f"model_{side}"] = pc.struct_field(candidate, "model")
        out[f"uid_{side}"] = pc.struct_field(candidate, "sha256")
    out |= {
        "caption": pc.struct_field(prompt, "text"),
        "group_key": pc.struct_field(prompt, "group_key"),
        "prompt_id": pc.struct_field(prompt, "id"),
        "relations": pc.struct_field(prompt, "relations"),
        **{f"votes_{name}": pc.struct_field(votes, name) for name in VOTES},
    }
    for field in FIELDS:
        if field not in out:
            out[field] = records[field]
    return {
        field: column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        for field, column in out.items()
    }
