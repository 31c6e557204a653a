"""Arena battle records (the Chatbot Arena / FastChat `clean_battle` shape): `<split>.json`, a
list of `{"model_a", "model_b", "winner", ...}` with `winner` in `model_a | model_b | tie |
tie (bothbad)`, which Elo / Bradley-Terry leaderboard code reads as it is.

One battle per pair, its aggregated label (the individual judgments are in the export folder's
votes table). The sides are in the shown order of `sides.py`: `model_a` is the generator
config of image 0 (`image_a`), which is the stored candidate b where `sides_swapped`. Images
are named like `openrlhf.py` (paths into `images-<n>.tar`, or storage keys) and by checksum
(`image_a_sha256`, `image_b_sha256`). Also `question_id` (the prompt id), `prompt`, `pair_id`,
`tstamp` (the last counted judgment, Unix seconds), `num_votes`, `confidence`, `anony` (true:
annotators never see model names).
"""

from __future__ import annotations

from datetime import datetime

from training_bridge.datasets.exporters.interface import (
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
)
from training_bridge.datasets.exporters.pair_items import (
    CHUNK_RECORDS,
    CHUNK_RECORDS_WITH_IMAGES,
    export_items,
)
from training_bridge.datasets.exporters.sides import record_shown

COLUMNS = ("canonical",)
__all__ = ["CHUNK_RECORDS", "CHUNK_RECORDS_WITH_IMAGES", "COLUMNS", "WINNERS", "export"]
WINNERS = {"a": "model_a", "b": "model_b", "tie": "tie", "both_wrong": "tie (bothbad)"}


def battle(stored: dict, paths: dict[str, str]) -> dict:
    record = record_shown(stored)
    first, second = record["candidates"]
    judged_at = datetime.fromisoformat(record["judged_at"].replace("Z", "+00:00"))
    return {
        "question_id": record["prompt"]["id"],
        "model_a": first["model"],
        "model_b": second["model"],
        "winner": WINNERS[record["label"]],
        "prompt": record["prompt"]["text"],
        "image_a": paths[first["key"]],
        "image_b": paths[second["key"]],
        "image_a_sha256": first["sha256"],
        "image_b_sha256": second["sha256"],
        "pair_id": record["pair_id"],
        "sides_swapped": record["sides_swapped"],
        "tstamp": judged_at.timestamp(),
        "num_votes": record["num_votes"],
        "confidence": record.get("confidence", record["agreement"]),
        "anony": True,
    }


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
    image_url_prefix: str = "",
) -> None:
    export_items(
        records=records,
        sink=sink,
        images=images,
        progress=progress,
        keep=lambda record: record["label"] in WINNERS,
        item=battle,
        lines=False,
    )
