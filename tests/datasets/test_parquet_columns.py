"""The Parquet exporter's columns, row by row, for records as `record_build` writes them,
including awkward ones (escapes, keys like ours inside the prompt's structure, non-ASCII text,
empty lists, nulls, every label), read back from the files it writes."""

import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from tests.datasets.canonical_records import awkward_lines, record
from training_bridge.datasets.aggregation.records import (
    canonical_line,
)
from training_bridge.datasets.exporters import parquet
from training_bridge.datasets.exporters.sides import record_shown, sides_swapped


def _escaped_lines() -> list[str]:
    return [
        canonical_line(record(20, text='a "quoted" cat \\ next to a dog\nsecond line')),
        canonical_line(record(21, split="val", perturbed_text='the "other" prompt')),
        canonical_line(record(22, split="val", structure={"say": 'a "text":"x" sign'})),
    ]


class _FolderSink:
    """Writes each artifact into a folder (what the export service's sink does locally)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    @contextmanager
    def file(self, name: str):
        path = self.folder / name
        yield path
        self.names.append(name)


def _exported(lines: list[str], folder: Path) -> dict[str, list[dict]]:
    sink = _FolderSink(folder)
    done: list[int] = []
    parquet.export(
        records=[lines],
        sink=sink,
        images=None,
        progress=done.append,
        image_url_prefix="file:///media/",
    )
    assert done == [len(lines)]
    return {
        name.split("-")[0]: pq.read_table(folder / name).to_pylist() for name in sorted(sink.names)
    }


def _expected_row(stored: dict, index: int) -> dict:
    """The Parquet row of a canonical record, derived here from the record itself (sides in the
    shown order, `index` the row's number in its split)."""
    record = record_shown(stored)
    first, second = record["candidates"]
    label = record["label"]
    best = {"a": first["sha256"], "b": second["sha256"]}.get(label, "")
    return {
        "caption": record["prompt"]["text"],
        "jpg_0": None,
        "jpg_1": None,
        "label_0": {"a": 1.0, "b": 0.0}.get(label, 0.5),
        "label_1": {"a": 0.0, "b": 1.0}.get(label, 0.5),
        "model_0": first["model"],
        "model_1": second["model"],
        "ranking_id": record["pair_id"],
        "user_id": record["annotator_ids"][0],
        "num_example_per_prompt": record["num_example_per_prompt"],
        "image_0_uid": first["sha256"],
        "image_1_uid": second["sha256"],
        "best_image_uid": best,
        "has_label": label != "both_wrong",
        "are_different": first["sha256"] != second["sha256"],
        "created_at": datetime.fromisoformat(record["judged_at"].replace("Z", "")),
        "image_0_url": f"file:///media/{first['key']}",
        "image_1_url": f"file:///media/{second['key']}",
        "split": record["split"],
        "pair_id": record["pair_id"],
        "pair_kind": record["kind"],
        "label": label,
        "agreement": record["agreement"],
        "confidence": record.get("confidence"),
        "num_votes": record["num_votes"],
        **{f"votes_{name}": record["votes"][name] for name in parquet.VOTES},
        "intended_winner": record["intended_winner"],
        "perturbation_type": record["perturbation_type"],
        "num_perturbations": record["num_perturbations"],
        "relations": record["prompt"]["relations"],
        "prompt_id": record["prompt"]["id"],
        "group_key": record["prompt"]["group_key"],
        "image_0_key": first["key"],
        "image_1_key": second["key"],
        "annotator_ids": record["annotator_ids"],
        "sides_swapped": record["sides_swapped"],
        "__index_level_0__": index,
    }


def test_every_column_of_every_row_is_the_records_value_split_by_split(tmp_path):
    plain = awkward_lines()
    escaped = _escaped_lines()
    lines = [plain[0], escaped[0], plain[1], escaped[1], plain[2], escaped[2], *plain[3:]]

    tables = _exported(lines, tmp_path)

    records = [json.loads(line) for line in lines]
    assert sorted(tables) == ["test", "train", "val"]
    for split, rows in tables.items():
        in_split = [r for r in records if r["split"] == split]
        expected = [_expected_row(r, index) for index, r in enumerate(in_split)]
        assert rows == expected, split
    assert [row["ranking_id"] for row in tables["val"]] == [2, 21, 22, 5]
    assert [row["caption"] for row in tables["train"]][1] == (
        'a "quoted" cat \\ next to a dog\nsecond line'
    )


def test_the_files_have_the_pick_a_pic_schema_and_a_shard_name_per_split(tmp_path):
    tables = _exported(awkward_lines(), tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test-00000.parquet", "train-00000.parquet", "val-00000.parquet",
    ]  # fmt: skip
    for path in tmp_path.iterdir():
        assert pq.read_schema(path).remove_metadata() == parquet.SCHEMA
    assert sum(len(rows) for rows in tables.values()) == len(awkward_lines())


def test_a_record_with_extra_keys_or_fewer_votes_is_read_by_its_keys(tmp_path):
    extra_key = record(30)
    extra_key["zz_extra"] = {"split": "test"}
    fewer_votes = record(32)
    fewer_votes["votes"] = {"a": 2, "b": 1}
    lines = [canonical_line(extra_key), canonical_line(fewer_votes)]

    (rows,) = _exported(lines, tmp_path).values()

    assert [row["split"] for row in rows] == ["train", "train"]
    assert [sides_swapped(30), sides_swapped(32)] == [False, True]
    assert [row["votes_a"] for row in rows] == [2, 1]  # pair 32 shows candidate b first
    assert [row["votes_b"] for row in rows] == [1, 2]
    assert [row["votes_tie"] for row in rows] == [0, None]
