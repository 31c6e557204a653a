"""The Parquet exporter reads canonical lines from their bytes (`Scan`) and falls back to
pyarrow's JSON reader for lines it cannot read: both must give the same columns, row for row."""

import pyarrow as pa
import pyarrow.compute as pc

from tests.datasets.canonical_records import awkward_lines, record
from training_bridge.datasets.aggregation.records import (
    canonical_line,
)
from training_bridge.datasets.exporters import parquet
from training_bridge.datasets.exporters.canonical_parsed import fields_parsed
from training_bridge.datasets.exporters.canonical_scan import Scan
from training_bridge.datasets.exporters.interface import SPLITS


def _by_json_reader(lines: list[str]) -> dict[str, pa.Table]:
    table = parquet.pickapic_table(fields_parsed(lines), image_url_prefix=None)
    parts = {s: table.filter(pc.equal(table["split"], s)) for s in SPLITS}
    return {s: t for s, t in parts.items() if t.num_rows}


def _assert_same(got: dict[str, pa.Table], expected: dict[str, pa.Table]) -> None:
    assert sorted(got) == sorted(expected)
    for split, table in expected.items():
        assert got[split].schema == parquet.SCHEMA
        assert got[split].to_pylist() == table.to_pylist(), split
        assert got[split].equals(table), split


def test_records_as_record_build_writes_them_are_read_without_the_json_reader():
    lines = awkward_lines()
    scan = Scan(lines)
    assert scan.good.tolist() == [True] * len(lines)
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))


def test_lines_with_escapes_go_to_the_json_reader_and_keep_their_place():
    plain = awkward_lines()
    escaped = [
        canonical_line(record(20, text='a "quoted" cat \\ next to a dog\nsecond line')),
        canonical_line(record(21, split="val", perturbed_text='the "other" prompt')),
        canonical_line(record(22, split="val", structure={"say": 'a "text":"x" sign'})),
    ]
    lines = [plain[0], escaped[0], plain[1], escaped[1], plain[2], escaped[2], *plain[3:]]
    scan = Scan(lines)
    assert scan.good.tolist() == ["\\" not in line for line in lines]
    assert scan.good.sum() == len(plain)
    got = parquet.split_tables(lines)
    _assert_same(got, _by_json_reader(lines))
    assert got["val"].column("ranking_id").to_pylist() == [2, 21, 22, 5]


def test_a_record_with_another_shape_is_read_by_the_json_reader():
    extra_key = record(30)
    extra_key["zz_extra"] = {"split": "test"}  # sorts last: the tail's keys move
    fewer_votes = record(31, split="val")
    fewer_votes["votes"] = {"a": 2, "b": 1}
    bigger_candidate = record(32, split="test")
    bigger_candidate["candidates"][0]["extra"] = "x"
    odd = [canonical_line(r) for r in (extra_key, fewer_votes, bigger_candidate)]
    lines = [*awkward_lines()[:3], *odd]
    assert Scan(lines).good.tolist() == [True, True, True, False, False, False]
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))


def test_a_number_that_does_not_cast_sends_the_chunk_to_the_json_reader():
    broken = record(40)
    broken["num_votes"] = None
    lines = [*awkward_lines(), canonical_line(broken)]
    assert Scan(lines).good.all()  # the shape is right; the cast is what fails
    got = parquet.split_tables(lines)
    _assert_same(got, _by_json_reader(lines))
    assert got["train"].column("num_votes").to_pylist()[-1] is None


def test_a_chunk_of_only_unreadable_lines_and_an_empty_chunk():
    lines = [canonical_line(record(50, text='"quoted"'))]
    assert Scan(lines).good.tolist() == [False]
    _assert_same(parquet.split_tables(lines), _by_json_reader(lines))
    assert parquet.split_tables([]) == {}


def test_a_line_frozen_before_records_carried_a_confidence_exports_a_null_one():
    old = record(60, split="val")
    del old["confidence"], old["settled"]
    lines = [*awkward_lines()[:2], canonical_line(old)]
    assert Scan(lines).good.tolist() == [True, True, False]
    got = parquet.split_tables(lines)
    _assert_same(got, _by_json_reader(lines))
    assert got["val"].column("confidence").to_pylist() == [0.873421, None]
