"""Every export loaded by the library its users load it with: Hugging Face `datasets` (the folder
as it is, with its dataset card), pyarrow, pandas, `webdataset`, and the reading code of
PickScore and HPSv3 (their lines quoted below, from yuvalkirstain/PickScore
trainer/datasetss/clip_hf_dataset.py and HPSv3's pairwise dataset / JSON loader)."""

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from annotation.models import Judgment
from generation_workers.models import Candidate
from tests.datasets.factories import judge_bulk, prefer, version_frozen, world_build
from training_bridge.datasets.exporters.sides import sides_swapped
from training_bridge.datasets.services.exports import dataset_export_request, dataset_export_run

pytestmark = pytest.mark.django_db

# The features of yuvalkirstain/pickapic_v2 as its dataset card publishes them.
PICKAPIC_V2 = pa.schema(
    [
        ("are_different", pa.bool_()),
        ("best_image_uid", pa.string()),
        ("caption", pa.string()),
        ("created_at", pa.timestamp("ns")),
        ("has_label", pa.bool_()),
        ("image_0_uid", pa.string()),
        ("image_0_url", pa.string()),
        ("image_1_uid", pa.string()),
        ("image_1_url", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("model_0", pa.string()),
        ("model_1", pa.string()),
        ("ranking_id", pa.int64()),
        ("user_id", pa.int64()),
        ("num_example_per_prompt", pa.int64()),
        ("__index_level_0__", pa.int64()),
    ]
)


def _votes(pair):
    """A win for a, a win for b, a tie, a both-wrong majority, in turn."""
    return [
        ["left", "left", "right"],
        ["right", "right", "right"],
        ["tie", "tie", "left"],
        ["both_wrong", "both_wrong", "tie"],
    ][pair.pk % 4]


def _frozen(groups=3, choices=_votes, **filters):
    world = world_build(groups=groups)
    judge_bulk(world, choices)
    version = version_frozen(
        dataset_name="spatial",
        filter_spec={
            "queues": [world.queue.name],
            "keep_labels": ["winner", "tie", "both_wrong"],
            **filters,
        },
        split_spec={"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
    )
    return world, version


def _export(version, format, include_images=True, force=False):
    export = dataset_export_request(
        version_id=version.pk, format=format, include_images=include_images, force=force
    )
    return dataset_export_run(export_id=export.pk)


def _read(key):
    with storages["default"].open(key, "rb") as handle:
        return handle.read()


def _download(export, folder: Path) -> Path:
    """The export's folder as a user downloads it: every listed file, as it is."""
    folder.mkdir(parents=True)
    for artifact in export.artifacts:
        (folder / artifact["name"]).write_bytes(_read(artifact["key"]))
    return folder


def _extract_images(folder: Path) -> None:
    for shard in sorted(folder.glob("images-*.tar")):
        with tarfile.open(shard) as tar:
            tar.extractall(folder, filter="data")


def _load(folder: Path, tmp_path: Path, *args, **kwargs):
    return datasets.load_dataset(str(folder), *args, cache_dir=str(tmp_path / "hf"), **kwargs)


def test_counterfactual_sides_are_shown_in_a_stable_hashed_order_in_every_format(tmp_path):
    # Given counterfactual pairs whose intended winner is always candidate a, all judged so
    world = world_build(groups=50)
    judge_bulk(world, lambda pair: [prefer("intended", pair)] * 3)
    spec = {"queues": [world.queue.name], "pair_kinds": ["counterfactual"]}
    version = version_frozen(dataset_name="cf", filter_spec=spec)
    assert version.record_count == 100
    assert all(
        p.intended_winner_id == p.candidate_a_id for p in world.pairs if p.intended_winner_id
    )

    # When it is exported as Parquet (twice) and as WebDataset and arena battles
    parquet = _export(version, "parquet", include_images=False)
    again = _export(version, "parquet", include_images=False, force=True)
    table = pa.concat_tables(
        pq.read_table(io.BytesIO(_read(a["key"])))
        for a in parquet.artifacts
        if a["name"].endswith("0.parquet") and a["name"] != "votes.parquet"
    )

    # Then image 0 is the winner in about half the rows, exactly where the hash says not swapped
    label_0 = table.column("label_0").to_pylist()
    assert 0.35 <= sum(label_0) / len(label_0) <= 0.65
    expected = {
        pid: 0.0 if sides_swapped(pid) else 1.0 for pid in table.column("pair_id").to_pylist()
    }
    assert dict(zip(table.column("pair_id").to_pylist(), label_0, strict=True)) == expected
    assert table.column("sides_swapped").to_pylist() == [
        sides_swapped(pid) for pid in table.column("pair_id").to_pylist()
    ]
    manifest = json.loads(_read("datasets/cf/v1/manifest.json"))
    assert manifest["side_order"].startswith("side 0 is candidate b when splitmix64(pair_id)")
    # and re-exports and a re-frozen version show the same sides
    assert [a["sha256"] for a in again.artifacts] == [a["sha256"] for a in parquet.artifacts]
    refrozen = version_frozen(dataset_name="cf", filter_spec=spec)
    other = _export(refrozen, "parquet", include_images=False)
    assert [a["sha256"] for a in other.artifacts if a["name"] != "README.md"] == [
        a["sha256"] for a in parquet.artifacts if a["name"] != "README.md"
    ]
    # and the other positional formats agree with the Parquet, pair by pair
    shards = _export(version, "webdataset", include_images=False)
    for artifact in shards.artifacts:
        if artifact["name"].endswith(".tar"):
            with tarfile.open(fileobj=io.BytesIO(_read(artifact["key"]))) as tar:
                for member in tar:
                    if not member.name.endswith(".json"):
                        continue
                    record = json.loads(tar.extractfile(member).read())
                    assert record["label"] == ("b" if sides_swapped(record["pair_id"]) else "a")
    arena = _download(_export(version, "arena", include_images=False), tmp_path / "arena")
    battles = pd.concat(pd.read_json(path) for path in sorted(arena.glob("*.json")))
    assert sorted(battles["winner"].unique()) == ["model_a", "model_b"]
    assert dict(zip(battles["pair_id"], battles["winner"], strict=True)) == {
        pid: "model_b" if label == 0.0 else "model_a" for pid, label in expected.items()
    }


def test_pick_a_pic_parquet_concatenates_with_pick_a_pic_v2_and_pickscore_reads_it(tmp_path):
    # Given an export and a table of Pick-a-Pic v2's published schema
    world, version = _frozen(groups=6)
    folder = _download(_export(version, "parquet"), tmp_path / "parquet")
    image = io.BytesIO()
    Image.new("RGB", (4, 4)).save(image, format="JPEG")
    row = {
        "are_different": True, "best_image_uid": "u0", "caption": "a cat left of a dog",
        "created_at": pd.Timestamp("2023-05-01 12:00:00"), "has_label": True,
        "image_0_uid": "u0", "image_0_url": "https://example.org/0.jpg", "image_1_uid": "u1",
        "image_1_url": "https://example.org/1.jpg", "jpg_0": image.getvalue(),
        "jpg_1": image.getvalue(), "label_0": 1.0, "label_1": 0.0, "model_0": "sdxl",
        "model_1": "sd21", "ranking_id": 7, "user_id": 11, "num_example_per_prompt": 1,
        "__index_level_0__": 0,
    }  # fmt: skip
    pq.write_table(pa.Table.from_pylist([row], schema=PICKAPIC_V2), tmp_path / "v2.parquet")
    v2 = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "v2.parquet"), cache_dir=str(tmp_path / "hf")
    )["train"]

    # When the folder is loaded as it is (its dataset card names the splits)
    ours = _load(folder, tmp_path)

    # Then PickScore's default split names are there, and v2's columns have v2's types
    counts = version.manifest["counts"]["split"]
    assert {name: split.num_rows for name, split in ours.items()} == {
        "train": counts["train"], "validation": counts["val"], "test": counts["test"],
        "validation_unique": counts["val"], "test_unique": counts["test"],
    }  # fmt: skip
    train = ours["train"]
    for name in PICKAPIC_V2.names:
        assert train.features[name] == v2.features[name], name
    assert train[0]["image_0_url"] == "" and isinstance(train[0]["jpg_0"], bytes)
    # and concatenating with Pick-a-Pic v2 works, on v2's columns or on all of ours
    both = datasets.concatenate_datasets([train.select_columns(PICKAPIC_V2.names), v2])
    assert both.num_rows == counts["train"] + 1
    assert both[-1]["model_0"] == "sdxl"
    everything = datasets.concatenate_datasets([train, v2])
    assert everything.num_rows == counts["train"] + 1
    assert everything[-1]["pair_id"] is None

    # and PickScore's limit_examples_per_prompt (its code, as written) keeps 1 row per caption
    dataset = ours["validation_unique"]
    df = dataset.to_pandas()
    df = df.drop("__index_level_0__", axis=1)
    df = df.groupby("caption").head(1)
    limited = datasets.Dataset.from_pandas(df)
    assert limited.num_rows == len(set(dataset["caption"])) < dataset.num_rows
    # and its keep_only_with_label_in_non_train filter
    labelled = dataset.filter(lambda x: x["has_label"])
    assert labelled.num_rows == sum(1 for r in dataset["label"] if r != "both_wrong")


def test_user_id_is_documented_and_the_votes_table_has_each_judgment(tmp_path):
    world, version = _frozen(groups=2)
    folder = _download(_export(version, "parquet"), tmp_path / "parquet")

    card = (folder / "README.md").read_text()
    assert "`user_id` is not the judging user" in card
    votes = _load(folder, tmp_path, "votes")["train"]
    judgments = Judgment.objects.filter(pair__in=world.pairs)
    assert votes.num_rows == judgments.count() == 24
    pairs = {p.pk: p for p in world.pairs}
    for vote in votes:
        judgment = judgments.get(pair_id=vote["pair_id"], annotator_id=vote["annotator_id"])
        pair = pairs[vote["pair_id"]]
        stored = {"left": "a", "right": "b"}.get(judgment.choice, judgment.choice)
        shown = {"a": "b", "b": "a"}.get(stored, stored) if sides_swapped(pair.pk) else stored
        assert vote["answer"] == shown
        assert vote["candidate_id"] == judgment.winner_id
        assert vote["left_side"] == ("b" if sides_swapped(pair.pk) else "a")


def test_hps_json_as_hpsv3_reads_it(tmp_path):
    # Given an HPS export downloaded and its image tars extracted beside the JSON
    world, version = _frozen(groups=4)
    folder = _download(_export(version, "hps"), tmp_path / "hps")
    _extract_images(folder)

    for json_file in sorted(folder.glob("*.json")):
        # When HPSv3's JSON loader joins the paths with its data_root (the JSON's folder)
        data_root = os.path.dirname(json_file)
        samples = json.loads(json_file.read_text())
        for sample in samples:
            image_1 = os.path.join(data_root, sample["path1"])
            image_2 = os.path.join(data_root, sample["path2"])
            # Then every image exists (its dataset asserts it) and is the named one
            assert os.path.exists(image_1) and os.path.exists(image_2)
            assert hashlib.sha256(Path(image_1).read_bytes()).hexdigest() in sample["path1"]
            # and its soft label, model levels and confidence filter read the new keys
            choice_dist = sorted(sample["choice_dist"], reverse=True)
            assert sum(choice_dist) > 0
            assert choice_dist[0] / sum(choice_dist) in (2 / 3, 1.0)
            assert sample["model1"] and sample["model2"]
            assert 0.0 <= sample["confidence"] <= 1.0
        kept = [s for s in samples if s.get("confidence") is None or s["confidence"] >= 0.95]
        assert all(s["choice_dist"] == [3, 0] for s in kept)
    # and the folder itself loads with datasets
    loaded = _load(folder, tmp_path)
    assert sum(split.num_rows for split in loaded.values()) == 8  # the pairs with a winner
    for split in loaded.values():
        assert split.features["choice_dist"] == datasets.List(datasets.Value("int64"))


def test_webdataset_with_png_and_webp_images_loads_every_image_in_both_libraries(tmp_path):
    # Given a version whose candidates are stored half as PNG, half as WebP
    world = world_build(groups=4)
    for candidate in Candidate.objects.filter(campaign=world.campaign).order_by("id")[::2]:
        out = io.BytesIO()
        Image.open(io.BytesIO(_read(candidate.storage_key))).save(out, format="WEBP", lossless=True)
        sha = hashlib.sha256(out.getvalue()).hexdigest()
        key = f"candidates/{sha[:2]}/{sha}.webp"
        storages["default"].save(key, ContentFile(out.getvalue()))
        Candidate.objects.filter(pk=candidate.pk).update(storage_key=key, content_sha256=sha)
    judge_bulk(world, _votes)
    version = version_frozen(
        dataset_name="mixed",
        filter_spec={"queues": [world.queue.name], "keep_labels": ["winner", "tie", "both_wrong"]},
    )
    folder = _download(_export(version, "webdataset"), tmp_path / "webdataset")
    shards = sorted(str(p) for p in folder.glob("*.tar"))

    # When the shards are read by webdataset and by Hugging Face datasets
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil"))
    loaded = datasets.load_dataset(
        "webdataset", data_files={"train": shards}, cache_dir=str(tmp_path / "hf")
    )["train"]
    as_folder = _load(folder, tmp_path)

    # Then every pair has both images, all PNG, with the pixels of the stored ones
    assert len(samples) == loaded.num_rows == version.record_count == 16
    assert sum(split.num_rows for split in as_folder.values()) == 16
    keys = {(key := c.storage_key): key for c in Candidate.objects.filter(campaign=world.campaign)}
    assert any(key.endswith(".webp") for key in keys)
    for sample in samples:
        assert sorted(k for k in sample if not k.startswith("__")) == [
            "0.png", "1.png", "canonical.txt", "json",
        ]  # fmt: skip
        for side in (0, 1):
            stored = Image.open(io.BytesIO(_read(sample["json"]["candidates"][side]["key"])))
            assert np.array_equal(
                np.asarray(sample[f"{side}.png"]), np.asarray(stored.convert("RGB"))
            )
    for row in loaded:
        assert row["0.png"].size == row["1.png"].size == (8, 8)
        assert row["json"]["pair_id"] > 0


def test_openrlhf_rows_and_arena_battles_load_and_name_their_images(tmp_path):
    world, version = _frozen(groups=4)
    rows = _download(_export(version, "openrlhf"), tmp_path / "openrlhf")
    battles = _download(_export(version, "arena"), tmp_path / "arena")
    _extract_images(rows)

    # OpenRLHF reads JSON lines with datasets (prompt / chosen / rejected / margin keys)
    files = sorted(str(p) for p in rows.glob("*.jsonl"))
    preferences = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))[
        "train"
    ]
    assert preferences.num_rows == 8  # the pairs with a winner
    for row in preferences:
        assert {"prompt", "chosen", "rejected", "margin"} <= set(row)
        chosen = (rows / row["chosen"]).read_bytes()
        assert hashlib.sha256(chosen).hexdigest() == row["chosen_sha256"]
        assert row["margin"] in (1 / 3, 1.0)
    # Arena battles: every pair, winner in the arena's four values
    arena = pd.concat(pd.read_json(path) for path in sorted(battles.glob("*.json")))
    assert len(arena) == 16
    assert set(arena["winner"]) <= {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert set(arena["winner"]) >= {"tie", "tie (bothbad)"}
    for name in ("model_a", "model_b", "image_a_sha256", "image_b_sha256"):
        assert arena[name].notna().all()
    # and both folders load with datasets as they are
    assert sum(s.num_rows for s in _load(rows, tmp_path).values()) == 8
    assert sum(s.num_rows for s in _load(battles, tmp_path).values()) == 16


@pytest.mark.parametrize("format", ["jsonl", "parquet", "hps", "webdataset", "openrlhf", "arena"])
def test_every_export_folder_has_a_dataset_card_and_loads_as_it_is(format, tmp_path):
    world, version = _frozen(groups=2)
    folder = _download(_export(version, format), tmp_path / format)

    card = (folder / "README.md").read_text()
    header = card.split("---\n")[1]

    meta = yaml.safe_load(header)
    assert "&id" not in header  # plain YAML, no anchors (the Hub's card checker reads it)
    assert meta["license"] == "other"
    assert "text-to-image" in meta["task_categories"]
    names = ["default", "votes"] if format == "parquet" else ["default"]
    assert [c["config_name"] for c in meta["configs"]] == names
    for config in meta["configs"]:
        for entry in config["data_files"]:
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            assert all((folder / path).exists() for path in paths), entry
    loaded = _load(folder, tmp_path)
    records = version.record_count
    rows = sum(split.num_rows for name, split in loaded.items() if not name.endswith("_unique"))
    with_winner = sum(1 for p in world.pairs if p.pk % 4 in (0, 1))
    assert rows == {"hps": with_winner, "openrlhf": with_winner}.get(format, records)
    votes = pq.read_table(folder / "votes.parquet")
    assert votes.num_rows == 24
    if format == "parquet":
        assert _load(folder, tmp_path, "votes")["train"].num_rows == 24
