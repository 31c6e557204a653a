"""The Parquet exporter's columns, row by row, for records as `record_build` writes them,
including awkward ones (escapes, keys like ours inside the prompt's structure, non-ASCII text,
empty lists, nulls, every label), read back from the files it writes."""

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from training_bridge.datasets.aggregation.labels import Aggregate
from training_bridge.datasets.aggregation.records import (
    CandidateRow,
    PairRow,
    PromptRow,
    canonical_line,
    record_build,
)
from training_bridge.datasets.exporters import parquet

STRUCTURE = {
    "objects": [{"id": "o1", "name": "cat", "attributes": {}}],
    "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}],
}


def _record(
    pair_id: int,
    *,
    text: str = "a small cat to the left of a large dog",
    structure: object = STRUCTURE,
    relation_keys: str = "|left_of|",
    label: str = "a",
    intended: str | None = None,
    perturbed_text: str | None = None,
    agreement: float = 2 / 3,
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
        aggregate=Aggregate(label=label, votes=votes, agreement=agreement, num_votes=3),
        split=split,
        annotator_ids=list(annotators),
        judged_at=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(microseconds=pair_id % 10**9),
        num_example_per_prompt=2,
    )


def _awkward_lines() -> list[str]:
    """Records that stress the byte reader: keys like ours inside `structure`, brackets,
    colons and commas in strings, non-ASCII text, empty lists, nulls, every label."""
    records = [
        _record(1),
        _record(2, label="b", intended="b", split="val", perturbed_text="a dog: left, of [a] cat"),
        _record(3, label="tie", intended="a", split="test", agreement=0.5, size=None),
        _record(4, label="both_wrong", relation_keys="", annotators=(42,), agreement=1.0),
        _record(5, text="un café à Zürich, 東京 — «quoted» ✓", split="val"),
        _record(
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
        _record(7, structure=None, split="test"),
        _record(2**40, text="", split="train", annotators=(1, 2, 3, 4, 5, 6)),
    ]
    return [canonical_line(record) for record in records]


def _escaped_lines() -> list[str]:
    return [
        canonical_line(_record(20, text='a "quoted" cat \\ next to a dog\nsecond line')),
        canonical_line(_record(21, split="val", perturbed_text='the "other" prompt')),
        canonical_line(_record(22, split="val", structure={"say": 'a "text":"x" sign'})),
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
    parquet.export(records=[lines], sink=sink, images=None, progress=done.append)
    assert done == [len(lines)]
    return {
        name.split("-")[0]: pq.read_table(folder / name).to_pylist() for name in sorted(sink.names)
    }


def _expected_row(record: dict) -> dict:
    """The Parquet row of a canonical record, derived here from the record itself."""
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
        "created_at": datetime.fromisoformat(record["judged_at"].replace("Z", "+00:00")),
        "split": record["split"],
        "pair_id": record["pair_id"],
        "pair_kind": record["kind"],
        "label": label,
        "agreement": record["agreement"],
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
    }


def test_every_column_of_every_row_is_the_records_value_split_by_split(tmp_path):
    plain = _awkward_lines()
    escaped = _escaped_lines()
    lines = [plain[0], escaped[0], plain[1], escaped[1], plain[2], escaped[2], *plain[3:]]

    tables = _exported(lines, tmp_path)

    records = [json.loads(line) for line in lines]
    assert sorted(tables) == ["test", "train", "val"]
    for split, rows in tables.items():
        expected = [_expected_row(r) for r in records if r["split"] == split]
        assert rows == expected, split
    assert [row["ranking_id"] for row in tables["val"]] == [2, 21, 22, 5]
    assert [row["caption"] for row in tables["train"]][1] == (
        'a "quoted" cat \\ next to a dog\nsecond line'
    )


def test_the_files_have_the_pick_a_pic_schema_and_a_shard_name_per_split(tmp_path):
    tables = _exported(_awkward_lines(), tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test-00000.parquet", "train-00000.parquet", "val-00000.parquet",
    ]  # fmt: skip
    for path in tmp_path.iterdir():
        assert pq.read_schema(path).remove_metadata() == parquet.SCHEMA
    assert sum(len(rows) for rows in tables.values()) == len(_awkward_lines())


def test_a_record_with_extra_keys_or_fewer_votes_is_read_by_its_keys(tmp_path):
    extra_key = _record(30)
    extra_key["zz_extra"] = {"split": "test"}
    fewer_votes = _record(31)
    fewer_votes["votes"] = {"a": 2, "b": 1}
    lines = [canonical_line(extra_key), canonical_line(fewer_votes)]

    (rows,) = _exported(lines, tmp_path).values()

    assert [row["split"] for row in rows] == ["train", "train"]
    assert [row["votes_a"] for row in rows] == [2, 2]
    assert [row["votes_tie"] for row in rows] == [0, None]
