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
    (artifact,) = export.artifacts
    assert out == (
        f"spatial v1 jsonl: {artifact['key']} {artifact['size']} bytes "
        f"sha256 {version.content_hash}\n"
    )
    _run("export", "--dataset", "spatial", "--version", "1", "--no-images")
    assert sorted(
        DatasetExport.objects.filter(version=version).values_list("format", "include_images")
    ) == [("hps", False), ("jsonl", False), ("parquet", False), ("webdataset", False)]

    narrower = json.dumps({"queues": [world.queue.name], "pair_kinds": ["counterfactual"]})
    _run(
        "freeze", "--dataset", "spatial", "--filter-spec", narrower,
        "--split-spec", '{"seed": 0}', "--parent", "1",
    )  # fmt: skip
    out = _run("diff", "--dataset", "spatial", "1", "2", "--limit", "2")
    assert out.splitlines()[0] == (
        "spatial v1 -> v2: 0 added, 4 removed, 0 relabelled, 0 moved split, 4 unchanged"
    )
    assert len(out.splitlines()) == 3


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


def test_export_command_refuses_an_unknown_version():
    with pytest.raises(CommandError, match=r"^version: no version 3 of dataset 'spatial'"):
        _run("export", "--dataset", "spatial", "--version", "3")
