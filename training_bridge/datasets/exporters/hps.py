"""HPSv3-style JSON: `[{"prompt", "path1" (the preferred image), "path2", "confidence",
"choice_dist", "model1", "model2"}]`, the keys HPSv3's pairwise dataset reads.

One JSON list per split (`<split>.json`). Only pairs with a winner are written (ties and
both-wrong pairs have no preferred image), so the side order of `sides.py` does not apply:
path1 is always the preferred image, as HPSv3 expects.
- `confidence`: the aggregator's confidence in the label, a reliability in [0, 1]: the posterior
  probability of the label for a label model (`dawid_skene`, `glad`, `trust_weighted` with
  `log_odds`), the vote share for `majority` (so HPSv3's 0.95 threshold keeps only unanimous
  majority pairs), 1 for an answer settled by review or a gold answer (versions frozen before
  records carried a confidence give their agreement).
- `choice_dist`: `[votes for path1, votes for path2]`, the counted votes (HPSv3's soft label is
  the first over the sum); a known answer without such votes counts as `[1, 0]`.
- `model1`, `model2`: the generator configs of path1 and path2.
- Paths (`pair_items.py`), with images: `images/<sha[:2]>/<sha>.<ext>`, relative to the folder
  that holds the JSON file, in the tar shards `images-00000.tar`, ...: extract them in that
  folder (`for t in images-*.tar; do tar xf "$t"; done`), then run HPSv3 from that folder or
  join each path with it (its `data_root`). Without images, paths are the storage keys.
"""

from __future__ import annotations

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
    image_path,
)

# The record columns this exporter reads: the canonical lines only.
COLUMNS = ("canonical",)
__all__ = ["CHUNK_RECORDS", "CHUNK_RECORDS_WITH_IMAGES", "COLUMNS", "export", "image_path"]


def winner_and_other(record: dict) -> tuple[dict, dict]:
    first, second = record["candidates"]
    return (first, second) if record["label"] == "a" else (second, first)


def has_winner(record: dict) -> bool:
    return record["label"] in ("a", "b")


def votes_for(record: dict) -> list[int]:
    """[votes for the winner, votes for the other side]; a known answer with neither: [1, 0]."""
    winner = record["label"]
    loser = "b" if winner == "a" else "a"
    counts = [record["votes"].get(winner, 0), record["votes"].get(loser, 0)]
    return counts if any(counts) else [1, 0]


def hps_item(record: dict, paths: dict[str, str]) -> dict:
    preferred, other = winner_and_other(record)
    return {
        "prompt": record["prompt"]["text"],
        "path1": paths[preferred["key"]],
        "path2": paths[other["key"]],
        "confidence": record.get("confidence", record["agreement"]),
        "choice_dist": votes_for(record),
        "model1": preferred["model"],
        "model2": other["model"],
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
        keep=has_winner,
        item=hps_item,
        lines=False,
    )
