"""WebDataset tar shards for streaming training: one sample per pair, shards per split.

Shard `<split>-000000.tar` holds, per pair, `<key>.json` (the record as the export shows it,
`sample_json`), `<key>.canonical.txt` (the stored canonical line, sides in stored order) and,
with images, `<key>.0.png` and `<key>.1.png` (image 0 and 1 in the shown order). The key is the
pair id, zero-padded, so `webdataset.WebDataset(urls)` groups the files into one sample.

The `.json` has a fixed shape with no null values, because Hugging Face `datasets` takes a
shard's column types from its first few samples: a key that is null there and a number later
(a prompt's parent, an image's own prompt text) failed the load. The canonical line, with the
prompt's free-form structure and every lineage field, rides as text beside it.

Every image is PNG: stored PNG bytes are copied as they are, any other format (WebP) is decoded
and written again as PNG (lossless, from the decoded pixels). One extension in every sample is
what Hugging Face `datasets.load_dataset("webdataset", ...)` needs: it takes a shard's columns
from its first samples, so a shard that mixed `0.png` and `0.webp` failed to load, and shards
split by format lost the WebP images.
"""

from __future__ import annotations

import io
import json

from training_bridge.datasets.exporters.interface import (
    SPLITS,
    ArtifactSink,
    ImageReader,
    Progress,
    RecordChunks,
    chunks_rebatched,
    image_extension,
)
from training_bridge.datasets.exporters.sides import record_shown
from training_bridge.datasets.exporters.tarballs import ShardedTars

# The record columns this exporter reads.
COLUMNS = ("canonical",)
CHUNK_RECORDS = 5_000
CHUNK_RECORDS_WITH_IMAGES = 64
SAMPLES_PER_SHARD = 10_000
SAMPLES_PER_SHARD_WITH_IMAGES = 1_000
MAX_BYTES_PER_SHARD = 512 * 1024 * 1024
IMAGE_EXTENSION = "png"
_CANDIDATE_KEYS = ("id", "key", "sha256", "model", "seed", "prompt_id")


def sample_json(stored: dict) -> dict:
    """The sample's record: the fields a trainer reads, sides in shown order (`sides.py`),
    never null (`intended_winner` "" when the pair has none)."""
    record = record_shown(stored)
    prompt = record["prompt"]
    return {
        "pair_id": record["pair_id"],
        "kind": record["kind"],
        "split": record["split"],
        "label": record["label"],
        "sides_swapped": record["sides_swapped"],
        "votes": record["votes"],
        "num_votes": record["num_votes"],
        "agreement": record["agreement"],
        "confidence": record.get("confidence", record["agreement"]),
        "intended_winner": record["intended_winner"] or "",
        "perturbation_type": record["perturbation_type"],
        "num_perturbations": record["num_perturbations"],
        "prompt": {
            "id": prompt["id"],
            "text": prompt["text"],
            "group_key": prompt["group_key"],
            "relations": prompt["relations"],
            "objects": prompt.get("objects", []),
        },
        "candidates": [
            {name: c[name] for name in _CANDIDATE_KEYS if name in c} for c in record["candidates"]
        ],
        "annotator_ids": record["annotator_ids"],
        "judged_at": record["judged_at"],
    }


def png_bytes(key: str, data: bytes) -> bytes:
    """The image as PNG: stored PNG bytes unchanged, anything else decoded and re-encoded."""
    if image_extension(key) == IMAGE_EXTENSION:
        return data
    from PIL import Image  # only when an image needs it

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()


def export(
    *,
    records: RecordChunks,
    sink: ArtifactSink,
    images: ImageReader | None,
    progress: Progress,
    image_url_prefix: str = "",
) -> None:
    size = CHUNK_RECORDS if images is None else CHUNK_RECORDS_WITH_IMAGES
    per_shard = SAMPLES_PER_SHARD if images is None else SAMPLES_PER_SHARD_WITH_IMAGES
    shards = {
        split: ShardedTars(
            sink, f"{split}-{{:06d}}.tar", max_samples=per_shard, max_bytes=MAX_BYTES_PER_SHARD
        )
        for split in SPLITS
    }
    done = 0
    try:
        for lines in chunks_rebatched(records, size):
            shown = [sample_json(json.loads(line)) for line in lines]
            data: list[bytes] = []
            if images is not None:
                data = images([c["key"] for record in shown for c in record["candidates"]])
            for index, (record, line) in enumerate(zip(shown, lines, strict=True)):
                tar = shards[record["split"]]
                key = f"{record['pair_id']:010d}"
                body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                tar.current.add(f"{key}.json", body.encode())
                tar.current.add(f"{key}.canonical.txt", line.encode())
                if images is not None:
                    for side, candidate in enumerate(record["candidates"]):
                        image = png_bytes(candidate["key"], data[2 * index + side])
                        tar.current.add(f"{key}.{side}.{IMAGE_EXTENSION}", image)
                tar.sample_done()
            done += len(lines)
            progress(done)
    except BaseException as error:
        for tar in shards.values():
            tar.close(error)
        raise
    for tar in shards.values():
        tar.close()
