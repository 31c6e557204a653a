"""The Parquet exporter reads canonical lines from their bytes (`Scan`) and falls back to
pyarrow's JSON reader for lines it cannot read: both must give the same columns, row for row."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from training_bridge.datasets.aggregation.labels import Aggregate
from training_bridge.datasets.aggregation.records import (
    CandidateRow,
    PairRow,
    PromptRow,
    canonical_line,
    record_build,
)
from training_bridge.datasets.exporters import parquet
from training_bridge.datasets.exporters.canonical_parsed import fields_parsed
from training_bridge.datasets.exporters.canonical_scan import Scan
from training_bridge.datasets.exporters.interface import SPLITS

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


def _by_json_reader(lines: list[str]) -> dict[str, pa.Table]:
    table = parquet.pickapic_table(fields_parsed(lines))
    parts = {s: table.filter(pc.equal(table["split"], s)) for s in SPLITS}
    return {s: t for s, t in parts.items() if t.num_rows}


def _assert_same(got: dict[str, pa.Table], expected: dict[str, pa.Table]) -> None:
    assert sorted(got) == sorted(expected)
    for split, table in expected.items():
        assert got[split].schema == parquet.SCHEMA
        assert got[split].to_pylist() == table.to_pylist(), split
        assert got[split].equals(table), split


def test_records_as_record_build_writes_them_are_read_without_the_json_reader():
    lines = _awkward_lines()
    scan = Scan(lines)
    assert scan.good.tolist() == [True] * len(lines)
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))


def test_lines_with_escapes_go_to_the_json_reader_and_keep_their_place():
    plain = _awkward_lines()
    escaped = [
        canonical_line(_record(20, text='a "quoted" cat \\ next to a dog\nsecond line')),
        canonical_line(_record(21, split="val", perturbed_text='the "other" prompt')),
        canonical_line(_record(22, split="val", structure={"say": 'a "text":"x" sign'})),
    ]
    lines = [plain[0], escaped[0], plain[1], escaped[1], plain[2], escaped[2], *plain[3:]]
    scan = Scan(lines)
    assert scan.good.tolist() == ["\\" not in line for line in lines]
    assert scan.good.sum() == len(plain)
    got = parquet.split_tables(lines)
    _assert_same(got, _by_json_reader(lines))
    assert got["val"].column("ranking_id").to_pylist() == [2, 21, 22, 5]


def test_a_record_with_another_shape_is_read_by_the_json_reader():
    extra_key = _record(30)
    extra_key["zz_extra"] = {"split": "test"}  # sorts last: the tail's keys move
    fewer_votes = _record(31, split="val")
    fewer_votes["votes"] = {"a": 2, "b": 1}
    bigger_candidate = _record(32, split="test")
    bigger_candidate["candidates"][0]["extra"] = "x"
    odd = [canonical_line(r) for r in (extra_key, fewer_votes, bigger_candidate)]
    lines = [*_awkward_lines()[:3], *odd]
    assert Scan(lines).good.tolist() == [True, True, True, False, False, False]
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))


def test_a_number_that_does_not_cast_sends_the_chunk_to_the_json_reader():
    broken = _record(40)
    broken["num_votes"] = None
    lines = [*_awkward_lines(), canonical_line(broken)]
    assert Scan(lines).good.all()  # the shape is right; the cast is what fails
    got = parquet.split_tables(lines)
    _assert_same(got, _by_json_reader(lines))
    assert got["train"].column("num_votes").to_pylist()[-1] is None


def test_a_chunk_of_only_unreadable_lines_and_an_empty_chunk():
    lines = [canonical_line(_record(50, text='"quoted"'))]
    assert Scan(lines).good.tolist() == [False]
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))
    assert parquet.split_tables([]) == {}
