"""The dataset card of an export folder: `README.md` with the Hugging Face YAML header, made from
the version's manifest and the folder's files, so the folder is a Hub dataset as it is
(`datasets.load_dataset(folder)` reads it; `huggingface-cli upload` publishes it).

The header names the license, task categories and tags, and one config per table: `default`
(the format's files, split by split: `train`, `validation`, `test`, plus PickScore's default
split names `validation_unique` and `test_unique` for the same val and test files in the
Parquet folder) and, in the Parquet folder, `votes` (`votes.parquet`, one row per judgment;
the other folders carry the same file but no config for it: a folder is read by one builder).
Each config lists its features where the format's columns are fixed (not the WebDataset's nor
the canonical JSONL's records, whose prompt structure is free-form: the library infers those).
The body says what the version holds, how it was labelled and how each format is read.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import yaml

from training_bridge.datasets.exporters.sides import RULE as SIDE_RULE

FILE_NAME = "README.md"
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
# PickScore's `valid_split_name` / `test_split_name` defaults, offered in the Parquet folder.
PICKSCORE_SPLITS = {"val": "validation_unique", "test": "test_unique"}

# The files of a format that hold its rows, per split (the split is the name's first part).
_DATA_FILES = {
    "jsonl": re.compile(r"^(records)\.jsonl$"),
    "parquet": re.compile(r"^(train|val|test)-\d+\.parquet$"),
    "webdataset": re.compile(r"^(train|val|test)-\d+\.tar$"),
    "hps": re.compile(r"^(train|val|test)\.json$"),
    "openrlhf": re.compile(r"^(train|val|test)\.jsonl$"),
    "arena": re.compile(r"^(train|val|test)\.json$"),
}

_STRING, _INT, _FLOAT, _BOOL = "string", "int64", "float64", "bool"
FEATURES: dict[str, list[tuple[str, Any]]] = {
    "hps": [
        ("prompt", _STRING), ("path1", _STRING), ("path2", _STRING), ("confidence", _FLOAT),
        ("choice_dist", [_INT]), ("model1", _STRING), ("model2", _STRING),
    ],
    "openrlhf": [
        ("prompt", _STRING), ("chosen", _STRING), ("rejected", _STRING), ("margin", _FLOAT),
        ("chosen_sha256", _STRING), ("rejected_sha256", _STRING), ("chosen_model", _STRING),
        ("rejected_model", _STRING), ("confidence", _FLOAT), ("pair_id", _INT),
    ],
    "arena": [
        ("question_id", _INT), ("model_a", _STRING), ("model_b", _STRING), ("winner", _STRING),
        ("prompt", _STRING), ("image_a", _STRING), ("image_b", _STRING),
        ("image_a_sha256", _STRING), ("image_b_sha256", _STRING), ("pair_id", _INT),
        ("sides_swapped", _BOOL), ("tstamp", _FLOAT), ("num_votes", _INT),
        ("confidence", _FLOAT), ("anony", _BOOL),
    ],
}  # fmt: skip

READING = {
    "jsonl": "`records.jsonl`: the canonical records, one JSON object a line; its sha256 is the "
    "version's content hash. Sides in stored order (candidate a first).",
    "parquet": "Pick-a-Pic v2 columns (`caption, jpg_0, jpg_1, label_0, label_1, ...`, "
    "`created_at` as `timestamp[ns]`, `image_0_url`, `image_1_url`, `__index_level_0__`) "
    "then ours. `user_id` is not the judging user of one judgment as in Pick-a-Pic: a row is "
    "a pair with its aggregated label and `user_id` its lowest annotator id; the individual "
    "judgments are the `votes` config. PickScore: `dataset.dataset_name=<this folder> "
    "dataset.dataset_config_name=default` (its default split names `validation_unique` and "
    "`test_unique` are offered here, the same rows as `validation` and `test`).",
    "webdataset": "Tar shards per split: per pair `<pair id>.json` (the record as shown: "
    "candidates in shown order, `sides_swapped`), `<pair id>.0.png`, `<pair id>.1.png` (every "
    "image PNG). Read by `webdataset.WebDataset(urls)` and `datasets.load_dataset(folder)`.",
    "hps": "HPSv3 pairwise JSON: `path1` is the preferred image; `confidence` the aggregator's "
    "reliability in [0, 1] (posterior of a label model, vote share for majority); "
    "`choice_dist` [votes for path1, votes for path2]. Paths are relative to this folder: "
    'extract the `images-*.tar` here first (`for t in images-*.tar; do tar xf "$t"; done`).',
    "openrlhf": "OpenRLHF preference rows: `--prompt_key prompt --chosen_key chosen "
    "--rejected_key rejected` (optional `margin`); images as paths relative to this folder "
    "(extract the `images-*.tar` here) and by sha256.",
    "arena": "Arena battles: `model_a`, `model_b`, `winner` in model_a | model_b | tie | "
    "tie (bothbad); one battle per pair (its aggregated label); images as paths relative to "
    "this folder (extract the `images-*.tar` here) and by sha256.",
}


def _dtype(kind: Any) -> dict[str, Any]:
    if isinstance(kind, list):
        return {"list": kind[0]}
    return {"dtype": kind}


def arrow_features(schema: pa.Schema) -> list[tuple[str, Any]]:
    """A fixed arrow schema as card features (the types the exporters write)."""
    names = {
        pa.string(): _STRING, pa.int64(): _INT, pa.float64(): _FLOAT, pa.bool_(): _BOOL,
        pa.binary(): "binary", pa.timestamp("ns"): "timestamp[ns]",
    }  # fmt: skip
    out = []
    for field in schema:
        if pa.types.is_list(field.type):
            out.append((field.name, [names[field.type.value_type]]))
        else:
            out.append((field.name, names[field.type]))
    return out


def _features_yaml(features: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": name, **_dtype(kind)} for name, kind in features]


def data_files(format: str, files: list[str]) -> dict[str, list[str]]:
    """The format's data files by card split name, in name order."""
    pattern = _DATA_FILES[format]
    splits: dict[str, list[str]] = {}
    for name in sorted(files):
        found = pattern.match(name)
        if found:
            split = SPLIT_NAMES.get(found.group(1), "train")
            splits.setdefault(split, []).append(name)
    if format == "parquet":
        for stored, alias in PICKSCORE_SPLITS.items():
            if SPLIT_NAMES[stored] in splits:
                splits[alias] = list(splits[SPLIT_NAMES[stored]])  # a copy: no YAML anchors
    order = [*SPLIT_NAMES.values(), *PICKSCORE_SPLITS.values()]
    splits = {name: splits[name] for name in sorted(splits, key=order.index)}
    return splits


def dataset_card(
    *,
    format: str,
    manifest: dict[str, Any],
    files: list[str],
    license: str,
    features: list[tuple[str, Any]] | None,
    vote_features: list[tuple[str, Any]],
    votes_file: str,
) -> str:
    """The README.md of one export folder."""
    splits = data_files(format, files)
    configs: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    if splits:
        configs.append(
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": p} for s, p in splits.items()],
                "default": True,
            }
        )
        if features is not None:
            infos.append({"config_name": "default", "features": _features_yaml(features)})
    if format == "parquet":  # one builder reads a folder: only Parquet's reads votes.parquet
        configs.append(
            {
                "config_name": "votes",
                "data_files": [{"split": "train", "path": votes_file}],
                **({} if splits else {"default": True}),
            }
        )
        infos.append({"config_name": "votes", "features": _features_yaml(vote_features)})
    header = {
        "license": license,
        "task_categories": ["text-to-image", "image-classification"],
        "tags": ["human-preference", "reward-modeling", "spatial-reasoning", "spatialprefs"],
        "pretty_name": f"{manifest.get('dataset')} v{manifest.get('version')} ({format})",
        "configs": configs,
        "dataset_info": infos,
    }
    counts = manifest.get("counts", {})
    aggregator = manifest.get("aggregator") or {}
    body = [
        f"# {manifest.get('dataset')} v{manifest.get('version')}: {format}",
        "",
        f"{manifest.get('record_count')} labelled image pairs from SpatialPrefs, frozen as "
        f"version {manifest.get('version')} (content hash `{manifest.get('content_hash')}`, "
        f"the sha256 of the canonical JSONL).",
        "",
        "## Reading this folder",
        "",
        READING[format],
        "",
        f"Side order: {SIDE_RULE}." if format != "jsonl" else "",
        "",
        "## Splits and labels",
        "",
        *[f"- split {k}: {v}" for k, v in sorted((counts.get("split") or {}).items())],
        *[f"- label {k}: {v}" for k, v in sorted((counts.get("label") or {}).items())],
        "",
        f"Labels by `{aggregator.get('name', 'majority')}` (options "
        f"{aggregator.get('options', {})}); a record's `confidence` is its confidence in the "
        f"label in [0, 1]. `{votes_file}` has every counted judgment (`answer` a / b in this "
        "folder's side order)"
        + (
            ", the `votes` config."
            if format == "parquet"
            else ': `load_dataset("parquet", data_files="votes.parquet")`.'
        ),
        "",
        "## Manifest",
        "",
        "`manifest.json` beside the export folders holds the specs, counts, annotators, "
        "aggregator fit and every exported file's sha256.",
        "",
    ]
    text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100)
    return "---\n" + text + "---\n\n" + "\n".join(body)
