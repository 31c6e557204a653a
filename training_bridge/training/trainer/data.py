"""An exported dataset folder read into pairs: Pick-a-Pic Parquet shards or WebDataset tars.

The folder is what the launcher downloads from the storage (or any folder of the same files):
`<dataset_dir>/parquet/<split>-<n>.parquet` or `<dataset_dir>/webdataset/<split>-<n>.tar`
(the shards may also sit in `<dataset_dir>` itself). Splits are `train`, `val`, `test`.
Pairs labelled both-wrong (`has_label` false) carry no preference and are left out.

The encoded image bytes of a split are held in memory (PNG/WebP: a few KB per procedural
image); decoded, resized images are cached up to a byte budget. A team training on millions
of large images plugs its own streaming trainer in through the external launcher.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training_bridge.training.trainer.metrics import pair_config

SPLITS = ("train", "val", "test")
LABEL_0 = {"a": 1.0, "b": 0.0, "tie": 0.5}


class DatasetError(ValueError):
    """The folder holds no usable export (no shards, no image bytes, a malformed record)."""


@dataclass(frozen=True)
class PairRecord:
    pair_id: int
    caption: str
    image_0: bytes
    image_1: bytes
    label_0: float  # 1: image 0 preferred, 0: image 1, 0.5: a tie
    relations: tuple[str, ...]
    num_perturbations: int
    config: str
    # (votes_a + votes_tie / 2) / (votes_a + votes_b + votes_tie) in the shown order, where the
    # export carries vote counts (Parquet) and any vote was cast; the `soft_labels` target
    soft_label_0: float | None = None


def vote_share(votes_a: int | None, votes_b: int | None, votes_tie: int | None) -> float | None:
    """Image 0's share of the votes, a tie counting half; None without votes."""
    a, b, tie = votes_a or 0, votes_b or 0, votes_tie or 0
    total = a + b + tie
    return (a + 0.5 * tie) / total if total > 0 else None


def _shards(dataset_dir: Path, fmt: str, split: str, suffix: str) -> list[Path]:
    for folder in (dataset_dir / fmt, dataset_dir):
        found = sorted(folder.glob(f"{split}-*{suffix}"))
        if found:
            return found
    return []


def _parquet_pairs(paths: list[Path]) -> Iterator[PairRecord]:
    import pyarrow.parquet as pq

    columns = [
        "caption", "jpg_0", "jpg_1", "label_0", "has_label", "pair_id", "relations",
        "num_perturbations", "model_0", "model_1",
    ]  # fmt: skip
    votes = ["votes_a", "votes_b", "votes_tie"]
    for path in paths:
        names = set(pq.read_schema(path).names)
        has_votes = all(name in names for name in votes)
        table = pq.read_table(path, columns=columns + (votes if has_votes else []))
        rows = table.to_pydict()
        for i in range(table.num_rows):
            if not rows["has_label"][i]:
                continue
            if rows["jpg_0"][i] is None or rows["jpg_1"][i] is None:
                raise DatasetError(
                    f"{path.name}: pair {rows['pair_id'][i]} has no image bytes (a keys-only "
                    "export); train on an export with images"
                )
            yield PairRecord(
                pair_id=rows["pair_id"][i],
                caption=rows["caption"][i] or "",
                image_0=rows["jpg_0"][i],
                image_1=rows["jpg_1"][i],
                label_0=float(rows["label_0"][i]),
                relations=tuple(rows["relations"][i] or ()),
                num_perturbations=int(rows["num_perturbations"][i] or 0),
                config=pair_config(rows["model_0"][i] or "", rows["model_1"][i] or ""),
                soft_label_0=vote_share(*(rows[name][i] for name in votes)) if has_votes else None,
            )


def _webdataset_pairs(paths: list[Path]) -> Iterator[PairRecord]:
    for path in paths:
        sample: dict[str, bytes] = {}
        key = None
        with tarfile.open(path, "r") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                stem, _, rest = member.name.partition(".")
                if key is not None and stem != key:
                    record = _webdataset_record(path, key, sample)
                    if record is not None:
                        yield record
                    sample = {}
                key = stem
                sample[rest] = tar.extractfile(member).read()
            if key is not None:
                record = _webdataset_record(path, key, sample)
                if record is not None:
                    yield record


def _webdataset_record(path: Path, key: str, sample: dict[str, bytes]) -> PairRecord | None:
    if "json" not in sample:
        raise DatasetError(f"{path.name}: sample {key} has no .json record")
    record = json.loads(sample["json"])
    label = record.get("label")
    if label not in LABEL_0:
        return None  # both-wrong: no preference between the two images
    images = [
        next((v for k, v in sample.items() if k.startswith(f"{side}.")), None) for side in "01"
    ]
    if images[0] is None or images[1] is None:
        raise DatasetError(f"{path.name}: sample {key} has no image bytes (a keys-only export)")
    candidates = record.get("candidates") or [{}, {}]
    prompt = record.get("prompt") or {}
    return PairRecord(
        pair_id=int(record["pair_id"]),
        caption=prompt.get("text", ""),
        image_0=images[0],
        image_1=images[1],
        label_0=LABEL_0[label],
        relations=tuple(prompt.get("relations") or ()),
        num_perturbations=int(record.get("num_perturbations") or 0),
        config=pair_config(candidates[0].get("model", ""), candidates[1].get("model", "")),
    )


def split_read(dataset_dir: Path, *, fmt: str, split: str) -> list[PairRecord]:
    """The labelled pairs of one split, in the export's order ([] when the split is empty)."""
    if fmt == "parquet":
        return list(_parquet_pairs(_shards(dataset_dir, "parquet", split, ".parquet")))
    if fmt == "webdataset":
        return list(_webdataset_pairs(_shards(dataset_dir, "webdataset", split, ".tar")))
    raise DatasetError(f"unknown dataset format {fmt!r}")


def dataset_read(dataset_dir: Path, *, fmt: str) -> dict[str, list[PairRecord]]:
    splits = {split: split_read(dataset_dir, fmt=fmt, split=split) for split in SPLITS}
    if not splits["train"]:
        raise DatasetError(
            f"no labelled training pairs in {dataset_dir} ({fmt}): the export is missing, "
            "empty, or has no train split"
        )
    return splits


@dataclass(frozen=True)
class ImageTransform:
    """Decode and resize to a square uint8 array; `mode` square (stretch) or clip (resize the
    shortest side, centre crop)."""

    size: int
    mode: str = "square"

    def __call__(self, data: bytes | Image.Image) -> np.ndarray:
        image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
        image = image.convert("RGB")
        if self.mode == "square":
            if image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        else:
            width, height = image.size
            scale = self.size / min(width, height)
            resized = (max(self.size, round(width * scale)), max(self.size, round(height * scale)))
            if resized != image.size:
                image = image.resize(resized, Image.Resampling.BICUBIC)
            left = (image.width - self.size) // 2
            top = (image.height - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        return np.asarray(image, dtype=np.uint8)


class DecodedImages:
    """Decoded images of a list of pairs, cached until the cache reaches `budget_bytes`."""

    def __init__(self, pairs: list[PairRecord], transform: ImageTransform, budget_bytes: int):
        self.pairs = pairs
        self.transform = transform
        per_image = transform.size * transform.size * 3
        self.capacity = budget_bytes // per_image if per_image else 0
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def get(self, index: int, side: int) -> np.ndarray:
        key = (index, side)
        found = self._cache.get(key)
        if found is not None:
            return found
        pair = self.pairs[index]
        array = self.transform(pair.image_0 if side == 0 else pair.image_1)
        if len(self._cache) < self.capacity:
            self._cache[key] = array
        return array
