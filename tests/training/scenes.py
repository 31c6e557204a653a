"""Procedural scene pairs and real exports of them, without the database.

`scene_records` renders, for each prompt, the image of the original spatial prompt and the
image of a perturbed copy (relation flipped or objects swapped) with the procedural renderer,
and writes canonical records as the freeze does; `export_write` runs the datasets engineer's
exporters (Parquet, WebDataset) over them into a folder, exactly as the export service does
into the storage. The trainer's pure tests read those folders.
"""

from __future__ import annotations

import hashlib
import json
import random
from contextlib import contextmanager
from pathlib import Path

from generation_workers.backends.procedural import render

OBJECTS = ["cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock"]
FLIP = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above",
         "below": "below"}  # fmt: skip


def _spec(subject: str, relation: str, reference: str) -> dict:
    return {
        "objects": [
            {"id": "o1", "name": subject, "count": 1, "attributes": {}},
            {"id": "o2", "name": reference, "count": 1, "attributes": {}},
        ],
        "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
        "scene": None,
    }


def scene_records(
    count: int, *, seed: int = 0, size: int = 64, noise: float = 0.0
) -> tuple[list[dict], dict[str, bytes]]:
    """`count` counterfactual pairs as canonical records, and the images by storage key.

    Splits by object pair (the prompt group): about 70/15/15. With `noise`, that fraction of
    labels prefers the perturbed image.
    """
    rng = random.Random(seed)
    records, images = [], {}
    for index in range(count):
        subject, reference = rng.sample(OBJECTS, 2)
        relation = rng.choice(list(FLIP))
        swap = rng.random() < 0.5
        perturbed = (
            _spec(reference, relation, subject)
            if swap
            else _spec(subject, FLIP[relation], reference)
        )
        keys = []
        for spec in (_spec(subject, relation, reference), perturbed):
            data = render(spec, seed=seed * 100_000 + index, width=size, height=size, fmt="png")
            sha = hashlib.sha256(data.encoded).hexdigest()
            key = f"candidates/{sha[:2]}/{sha}.png"
            images[key] = data.encoded
            keys.append((key, sha))
        good_first = rng.random() < 0.5
        order = [0, 1] if good_first else [1, 0]
        intended = "a" if good_first else "b"
        label = intended if rng.random() >= noise else ("b" if intended == "a" else "a")
        group = "+".join(sorted((subject, reference)))
        bucket = int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100
        split = "train" if bucket < 70 else ("val" if bucket < 85 else "test")
        records.append(
            {
                "pair_id": index + 1,
                "kind": "counterfactual",
                "label": label,
                "agreement": 1.0,
                "num_votes": 1,
                "votes": {
                    "a": int(label == "a"),
                    "b": int(label == "b"),
                    "tie": 0,
                    "both_wrong": 0,
                    "skip": 0,
                },  # fmt: skip
                "intended_winner": intended,
                "perturbation_type": "swap" if swap else "flip",
                "num_perturbations": 1,
                "split": split,
                "annotator_ids": [1],
                "judged_at": "2025-01-01T00:00:00.000000Z",
                "num_example_per_prompt": 1,
                "prompt": {
                    "id": index + 1,
                    "text": f"a photo of a {subject} {WORDS[relation]} a {reference}",
                    "group_key": group,
                    "relations": [relation],
                },
                "candidates": [
                    {"key": keys[o][0], "sha256": keys[o][1], "model": "procedural-64"}
                    for o in order
                ],
            }
        )
    return records, images


class _FolderSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def file(self, name: str):
        yield self.folder / name


def export_write(folder: Path, records: list[dict], images: dict[str, bytes], *, fmt: str) -> Path:
    """Run the real exporter of `fmt` over the records into `<folder>/<fmt>/`."""
    from training_bridge.datasets.exporters import exporter_for

    exporter = exporter_for(fmt)
    columns = getattr(exporter, "COLUMNS", ("canonical",))
    rows = []
    for record in records:  # the record columns the export service reads from the database
        values = {
            "canonical": json.dumps(record, sort_keys=True, separators=(",", ":")),
            "pair_id": record["pair_id"],
            "split": record["split"],
            "label": record["label"],
            "image_a_key": record["candidates"][0]["key"],
            "image_b_key": record["candidates"][1]["key"],
        }
        picked = tuple(values[column] for column in columns)
        rows.append(picked[0] if len(columns) == 1 else picked)
    exporter.export(
        records=[rows],
        sink=_FolderSink(folder / fmt),
        images=lambda keys: [images[key] for key in keys],
        progress=lambda done: None,
    )
    return folder
