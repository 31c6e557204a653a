"""Exports: canonical JSONL, Pick-a-Pic Parquet, HPSv3 JSON, WebDataset shards."""

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import textwrap
import urllib.request

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from django.core.files.storage import storages
from django.test import Client
from PIL import Image

from tests.conftest import s3_client
from tests.datasets.factories import judge_bulk, version_frozen, world_build
from training_bridge.datasets.exporters.sides import sides_swapped
from training_bridge.datasets.exporters.webdataset import sample_json
from training_bridge.datasets.services.exports import dataset_export_request, dataset_export_run
from training_bridge.models import DatasetExport

pytestmark = pytest.mark.django_db

PICKAPIC_COLUMNS = [
    "caption", "jpg_0", "jpg_1", "label_0", "label_1", "model_0", "model_1", "ranking_id",
    "user_id", "num_example_per_prompt", "image_0_uid", "image_1_uid", "best_image_uid",
    "has_label", "are_different", "created_at",
]  # fmt: skip


def _votes(pair):
    """Pairs cycle through a win for a, a win for b, a tie and a both-wrong majority."""
    return [
        ["left", "left", "right"],
        ["right", "right", "right"],
        ["tie", "tie", "left"],
        ["both_wrong", "both_wrong", "tie"],
    ][pair.pk % 4]


def _frozen(groups: int = 3, **world_options):
    world = world_build(groups=groups, **world_options)
    judge_bulk(world, _votes)
    version = version_frozen(
        dataset_name="spatial",
        filter_spec={
            "queues": [world.queue.name],
            "keep_labels": ["winner", "tie", "both_wrong"],
        },
        split_spec={"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
    )
    return world, version


def _export(version, format: str, include_images: bool = True, force: bool = False):
    export = dataset_export_request(
        version_id=version.pk, format=format, include_images=include_images, force=force
    )
    return dataset_export_run(export_id=export.pk)


def _read(key: str) -> bytes:
    with storages["default"].open(key, "rb") as handle:
        return handle.read()


def _files(export) -> dict[str, bytes]:
    return {a["name"]: _read(a["key"]) for a in export.artifacts}


CARD_AND_VOTES = ("README.md", "votes.parquet")


def _data(export) -> list[dict]:
    """The export's data files: its artifacts but the dataset card and the votes table."""
    return [a for a in export.artifacts if a["name"] not in CARD_AND_VOTES]


def _shown(pair):
    """The pair's candidates in the order every export but the JSONL shows them."""
    first, second = pair.candidate_a, pair.candidate_b
    return (second, first) if sides_swapped(pair.pk) else (first, second)


def test_jsonl_export_is_the_canonical_records_and_hashes_to_the_content_hash():
    world, version = _frozen()
    export = _export(version, "jsonl")

    assert export.status == DatasetExport.Status.DONE
    assert export.include_images is False
    assert sorted(a["name"] for a in export.artifacts) == [
        "README.md", "records.jsonl", "votes.parquet",
    ]  # fmt: skip
    (artifact,) = _data(export)
    assert artifact["key"] == "datasets/spatial/v1/jsonl/records.jsonl"
    data = _read(artifact["key"])
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"] == version.content_hash
    assert artifact["size"] == len(data)
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert len(records) == version.record_count == 12
    pair = world.pairs[0]
    record = next(r for r in records if r["pair_id"] == pair.pk)
    assert record["prompt"]["text"] == pair.prompt.text
    assert record["prompt"]["structure"] == pair.prompt.structure
    assert [c["key"] for c in record["candidates"]] == [
        pair.candidate_a.storage_key,
        pair.candidate_b.storage_key,
    ]
    assert record["label"] == _expected_label(pair)
    assert record["votes"]["a"] + record["votes"]["b"] + record["votes"]["tie"] >= 1
    assert record["split"] in ("train", "val", "test")
    assert record["prompt"]["group_key"] == pair.prompt.group_key
    assert export.records_done == export.records_total == 12


def _expected_label(pair) -> str:
    return ["a", "b", "tie", "both_wrong"][pair.pk % 4]


def test_every_format_exports_the_same_bytes_twice():
    _, version = _frozen()
    for format in ("jsonl", "parquet", "hps", "webdataset"):
        first = _export(version, format)
        first_files = _files(first)
        again = _export(version, format, force=True)
        assert again.artifacts == first.artifacts, format
        assert _files(again) == first_files, format


def test_parquet_reads_back_with_pyarrow_as_pick_a_pic_columns(tmp_path):
    world, version = _frozen()
    export = _export(version, "parquet")
    names = sorted(a["name"] for a in _data(export))
    assert all(name.endswith("-00000.parquet") for name in names)
    tables = {}
    for artifact in _data(export):
        path = tmp_path / artifact["name"]
        path.write_bytes(_read(artifact["key"]))
        tables[artifact["name"].split("-")[0]] = pq.read_table(path)
    assert sum(t.num_rows for t in tables.values()) == 12
    for split, table in tables.items():
        assert table.column_names[: len(PICKAPIC_COLUMNS)] == PICKAPIC_COLUMNS
        assert set(table.column("split").to_pylist()) == {split}
    pairs = {p.pk: p for p in world.pairs}
    for table in tables.values():
        for row in table.to_pylist():
            pair = pairs[row["ranking_id"]]
            first, second = _shown(pair)
            assert row["sides_swapped"] is (first == pair.candidate_b)
            label = _expected_label(pair)
            if row["sides_swapped"]:
                label = {"a": "b", "b": "a"}.get(label, label)
            assert (row["label_0"], row["label_1"]) == {
                "a": (1.0, 0.0),
                "b": (0.0, 1.0),
                "tie": (0.5, 0.5),
                "both_wrong": (0.5, 0.5),
            }[label]
            assert row["has_label"] is (label != "both_wrong")
            assert row["caption"] == pair.prompt.text
            assert row["jpg_0"] == _read(first.storage_key)
            assert row["jpg_1"] == _read(second.storage_key)
            assert row["image_0_url"] == row["image_1_url"] == ""
            assert row["image_0_uid"] == first.content_sha256
            assert row["best_image_uid"] == {
                "a": first.content_sha256,
                "b": second.content_sha256,
            }.get(label, "")
            assert row["model_0"] == first.config.name
            assert row["user_id"] == min(u.pk for u in world.annotators)
            assert row["are_different"] is True
            assert row["pair_kind"] == pair.kind


def test_parquet_without_images_names_the_images_by_key():
    world, version = _frozen()
    export = _export(version, "parquet", include_images=False)
    assert all("/parquet-keys/" in a["key"] for a in export.artifacts)
    table = pq.read_table(io.BytesIO(_read(_data(export)[0]["key"])))
    row = table.to_pylist()[0]
    assert row["jpg_0"] is None and row["jpg_1"] is None
    assert row["image_0_key"].startswith("candidates/")
    media = storages["default"].location
    assert row["image_0_url"] == f"file://{media}/{row['image_0_key']}"
    assert row["image_1_url"] == f"file://{media}/{row['image_1_key']}"


def test_hps_json_puts_the_preferred_image_first_and_ships_the_image_folder():
    world, version = _frozen()
    export = _export(version, "hps")
    files = _files(export)
    assert sorted(files) == sorted(
        [n for n in files if n.endswith(".json")] + ["images-00000.tar", *CARD_AND_VOTES]
    )
    items = [
        item for name, data in files.items() if name.endswith(".json") for item in json.loads(data)
    ]
    winners = [p for p in world.pairs if _expected_label(p) in ("a", "b")]
    assert len(items) == len(winners) == 6
    members = tarfile.open(fileobj=io.BytesIO(files["images-00000.tar"]))
    in_tar = {m.name: members.extractfile(m).read() for m in members}
    models = {
        c.content_sha256: c.config.name for p in world.pairs for c in (p.candidate_a, p.candidate_b)
    }
    by_prompt = {}
    for pair in winners:
        preferred = pair.candidate_a if _expected_label(pair) == "a" else pair.candidate_b
        other = pair.candidate_b if preferred == pair.candidate_a else pair.candidate_a
        by_prompt.setdefault(pair.prompt.text, []).append(
            (f"images/{preferred.content_sha256[:2]}/{preferred.content_sha256}.png",
             f"images/{other.content_sha256[:2]}/{other.content_sha256}.png")
        )  # fmt: skip
    for item in items:
        assert set(item) == {
            "prompt", "path1", "path2", "confidence", "choice_dist", "model1", "model2",
        }  # fmt: skip
        assert (item["path1"], item["path2"]) in by_prompt[item["prompt"]]
        assert (item["confidence"], item["choice_dist"]) in ((2 / 3, [2, 1]), (1.0, [3, 0]))
        assert (item["model1"], item["model2"]) == (
            models[item["path1"].rsplit("/", 1)[1][:-4]],
            models[item["path2"].rsplit("/", 1)[1][:-4]],
        )
        assert hashlib.sha256(in_tar[item["path1"]]).hexdigest() in item["path1"]
        assert hashlib.sha256(in_tar[item["path2"]]).hexdigest() in item["path2"]


def test_webdataset_shards_read_back_with_the_webdataset_library(tmp_path):
    world, version = _frozen()
    export = _export(version, "webdataset")
    urls = []
    for artifact in _data(export):
        path = tmp_path / artifact["name"]
        path.write_bytes(_read(artifact["key"]))
        urls.append(str(path))
    canonical = {
        pair_id: line for pair_id, line in version.records.values_list("pair_id", "canonical")
    }
    samples = list(wds.WebDataset(sorted(urls), shardshuffle=False).decode("pil"))
    assert len(samples) == 12
    pairs = {p.pk: p for p in world.pairs}
    for sample in samples:
        record = sample["json"]
        assert sample["__key__"] == f"{record['pair_id']:010d}"
        assert record == sample_json(json.loads(canonical[record["pair_id"]]))
        assert sample["canonical.txt"] == canonical[record["pair_id"]]
        assert isinstance(sample["0.png"], Image.Image)
        assert sample["0.png"].size == (8, 8)
        first, _ = _shown(pairs[record["pair_id"]])
        assert (
            sample["0.png"].tobytes()
            == Image.open(io.BytesIO(_read(first.storage_key))).convert("RGB").tobytes()
        )


def test_an_export_of_ten_thousand_pairs(tmp_path):
    world = world_build(groups=2500, distinct_images=64)
    assert len(world.pairs) == 10_000
    judge_bulk(world, lambda pair: ["left"])
    version = version_frozen(dataset_name="large", filter_spec={"queues": [world.queue.name]})
    assert version.record_count == 10_000

    jsonl = _export(version, "jsonl")
    assert _data(jsonl)[0]["sha256"] == version.content_hash
    parquet = _export(version, "parquet")
    rows = 0
    for artifact in _data(parquet):
        path = tmp_path / artifact["name"]
        path.write_bytes(_read(artifact["key"]))
        table = pq.read_table(path, columns=["ranking_id", "jpg_0", "label_0"])
        rows += table.num_rows
        assert table.column("jpg_0").null_count == 0
        swapped = pq.read_table(path, columns=["sides_swapped"]).column(0).to_pylist()
        assert table.column("label_0").to_pylist() == [0.0 if s else 1.0 for s in swapped]
    assert rows == 10_000
    assert parquet.records_done == 10_000


def test_s3_export_stores_artifacts_in_the_bucket_and_downloads_by_presigned_url(
    s3_settings, moto_endpoint, lead, tmp_path
):
    world, version = _frozen(groups=2)
    export = _export(version, "parquet")
    listed = s3_client(moto_endpoint).list_objects_v2(
        Bucket=s3_settings["S3_BUCKET"], Prefix="datasets/spatial/v1/"
    )
    keys = sorted(obj["Key"] for obj in listed["Contents"])
    assert keys == sorted(
        [
            "datasets/spatial/v1/manifest.json",
            "datasets/spatial/v1/cache/votes.parquet",  # the version's votes, for every export
            *(a["key"] for a in export.artifacts),
        ]
    )
    client = Client()
    client.force_login(lead)
    artifact = _data(export)[0]
    response = client.get(
        f"/api/dataset-versions/{version.pk}/artifacts/parquet/{artifact['name']}"
    )
    assert response.status_code == 302
    assert response["Location"].startswith(f"{moto_endpoint}/{s3_settings['S3_BUCKET']}/")
    assert "X-Amz-Signature=" in response["Location"]
    with urllib.request.urlopen(response["Location"], timeout=10) as download:  # noqa: S310
        data = download.read()
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    table = pq.read_table(io.BytesIO(data))
    assert table.column("jpg_0").null_count == 0


def test_a_separate_process_loads_the_downloads_with_datasets_and_webdataset(lead, tmp_path):
    world, version = _frozen(groups=6)
    parquet = _export(version, "parquet")
    shards = _export(version, "webdataset")
    client = Client()
    client.force_login(lead)
    for folder, export in (("parquet", parquet), ("webdataset", shards)):
        (tmp_path / folder).mkdir()
        for artifact in export.artifacts:
            response = client.get(
                f"/api/dataset-versions/{version.pk}/artifacts/{folder}/{artifact['name']}"
            )
            assert response.status_code == 200
            (tmp_path / folder / artifact["name"]).write_bytes(b"".join(response.streaming_content))
    script = textwrap.dedent(
        """
        import glob, json, sys
        import datasets, webdataset
        root = sys.argv[1]
        loaded = datasets.load_dataset(
            "parquet", data_dir=root + "/parquet", cache_dir=root + "/hf"
        )
        shards = sorted(glob.glob(root + "/webdataset/*.tar"))
        samples = list(webdataset.WebDataset(shards, shardshuffle=False).decode("pil"))
        print(json.dumps({
            "splits": {name: split.num_rows for name, split in loaded.items()},
            "columns": loaded["train"].column_names[:16],
            "jpg": type(loaded["train"][0]["jpg_0"]).__name__,
            "samples": len(samples),
            "image": list(samples[0]["1.png"].size),
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    counts = version.manifest["counts"]["split"]
    assert result["splits"] == {
        {"val": "validation"}.get(name, name): count for name, count in counts.items()
    }
    assert result["columns"] == PICKAPIC_COLUMNS
    assert result["jpg"] == "bytes"
    assert result["samples"] == 24
    assert result["image"] == [8, 8]
