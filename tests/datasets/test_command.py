"""`manage.py dataset freeze|export|diff`."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.datasets.factories import judge_bulk, world_build
from training_bridge.models import DatasetExport, DatasetVersion

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("dataset", *args, stdout=out)
    return out.getvalue()


def test_freeze_export_and_diff_from_the_command_line(tmp_path):
    world = world_build(groups=2)
    judge_bulk(world, lambda pair: ["left", "right", "left"])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"queues": [world.queue.name]}))

    out = _run("freeze", "--dataset", "spatial", "--filter-spec", f"@{spec_file}")
    version = DatasetVersion.objects.get(dataset__name="spatial", number=1)
    assert out == f"spatial v1: frozen, 8 records, hash {version.content_hash}\n"

    out = _run("export", "--dataset", "spatial", "--version", "1", "--format", "jsonl")
    export = DatasetExport.objects.get(version=version, format="jsonl")
    (artifact,) = [a for a in export.artifacts if a["name"] == "records.jsonl"]
    assert (
        f"spatial v1 jsonl: {artifact['key']} {artifact['size']} bytes "
        f"sha256 {version.content_hash}\n"
    ) in out
    assert len(out.splitlines()) == 3  # the records, the votes table, the dataset card
    _run("export", "--dataset", "spatial", "--version", "1", "--no-images")
    assert sorted(
        DatasetExport.objects.filter(version=version).values_list("format", "include_images")
    ) == [
        ("arena", False), ("hps", False), ("jsonl", False), ("openrlhf", False),
        ("parquet", False), ("webdataset", False),
    ]  # fmt: skip

    narrower = json.dumps({"queues": [world.queue.name], "pair_kinds": ["counterfactual"]})
    _run(
        "freeze", "--dataset", "spatial", "--filter-spec", narrower,
        "--split-spec", '{"seed": 0}', "--parent", "1",
    )  # fmt: skip
    out = _run("diff", "--dataset", "spatial", "1", "2", "--limit", "2")
    assert out.splitlines()[0] == (
        "spatial v1 -> v2: 0 added, 4 removed, 0 relabelled, 0 moved split, 4 unchanged "
        "(same label and same split (votes and agreement may differ))"
    )
    assert len(out.splitlines()) == 3

    # Given a third version that counts only the two annotators who answered left: the same
    # labels and splits, other votes and agreement
    lefts = [world.annotators[0].pk, world.annotators[2].pk]
    only_left = {"queues": [world.queue.name], "annotators": {"mode": "list", "ids": lefts}}
    _run("freeze", "--dataset", "spatial", "--filter-spec", json.dumps(only_left), "--parent", "1")
    out = _run("diff", "--dataset", "spatial", "1", "3")
    assert out.splitlines() == [
        "spatial v1 -> v3: 0 added, 0 removed, 0 relabelled, 0 moved split, 8 unchanged "
        "(same label and same split (votes and agreement may differ))"
    ]
    out = _run("diff", "--dataset", "spatial", "1", "3", "--votes", "--limit", "1")
    first = min(p.pk for p in world.pairs)
    assert out.splitlines() == [
        "spatial v1 -> v3: 0 added, 0 removed, 0 relabelled, 0 moved split, 8 unchanged "
        "(same label and same split (votes and agreement may differ)), 8 of them with other votes",
        f"= pair {first}: votes {{'a': 2, 'b': 1}} -> {{'a': 2}}, agreement 0.667 -> 1.000",
    ]


def test_diff_help_says_what_unchanged_means(capsys):
    with pytest.raises(SystemExit):
        call_command("dataset", "diff", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "'unchanged' when it has the same label and the same split" in text
    assert "--votes also report unchanged pairs whose vote counts or agreement changed" in text


def test_freeze_command_names_the_bad_field_and_saves_nothing():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    with pytest.raises(CommandError, match=r"^filter_spec.min_judgments: must be at least 1"):
        _run("freeze", "--dataset", "spatial", "--filter-spec", '{"min_judgments": 0}')
    with pytest.raises(CommandError, match=r"^filter-spec: not valid JSON"):
        _run("freeze", "--dataset", "spatial", "--filter-spec", "{queues")
    with pytest.raises(CommandError, match=r"^filter_spec.min_judgments: the selection is empty"):
        _run("freeze", "--dataset", "spatial", "--filter-spec", '{"min_judgments": 2}')
    assert DatasetVersion.objects.count() == 0


def test_export_command_names_the_format_of_an_unknown_one_and_exports_nothing():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    _run("freeze", "--dataset", "spatial", "--filter-spec", json.dumps({"queues": []}))
    with pytest.raises(CommandError, match=r"--format: invalid choice: 'csv'.*'openrlhf'"):
        _run("export", "--dataset", "spatial", "--version", "1", "--format", "csv")
    assert DatasetExport.objects.count() == 0


def test_export_command_refuses_an_unknown_version():
    with pytest.raises(CommandError, match=r"^version: no version 3 of dataset 'spatial'"):
        _run("export", "--dataset", "spatial", "--version", "3")
