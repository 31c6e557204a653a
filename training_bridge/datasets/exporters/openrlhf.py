"""OpenRLHF-style preference rows: `<split>.jsonl` of `{"prompt", "chosen", "rejected",
"margin", ...}`, what OpenRLHF's reward-model trainer reads with `--prompt_key prompt
--chosen_key chosen --rejected_key rejected` (and `margin` when asked for).

Only pairs with a winner are written. `chosen` and `rejected` name the images: with images,
`images/<sha[:2]>/<sha>.<ext>` relative to the folder holding the file, shipped in
`images-<n>.tar` (`pair_items.py`); without images, their storage keys. Both are also given by
checksum (`chosen_sha256`, `rejected_sha256`). `margin` is the counted votes' lead of the
chosen image over the rejected one, (chosen - rejected) / (chosen + rejected), in [0, 1]
(1 for a known answer without such votes). Also `confidence` (as in `hps.py`), `pair_id`,
`chosen_model`, `rejected_model`.
"""

from __future__ import annotations

from training_bridge.datasets.exporters.hps import has_winner, votes_for, winner_and_other
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

COLUMNS = ("canonical",)
__all__ = ["CHUNK_RECORDS", "CHUNK_RECORDS_WITH_IMAGES", "COLUMNS", "export"]


def preference_row(record: dict, paths: dict[str, str]) -> dict:
    chosen, rejected = winner_and_other(record)
    ahead, behind = votes_for(record)
    return {
        "prompt": record["prompt"]["text"],
        "chosen": paths[chosen["key"]],
        "rejected": paths[rejected["key"]],
        "margin": (ahead - behind) / (ahead + behind),
        "chosen_sha256": chosen["sha256"],
        "rejected_sha256": rejected["sha256"],
        "chosen_model": chosen["model"],
        "rejected_model": rejected["model"],
        "confidence": record.get("confidence", record["agreement"]),
        "pair_id": record["pair_id"],
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
        item=preference_row,
        lines=True,
    )
