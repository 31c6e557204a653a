"""Bulk-load judged pairs into a bench database with PostgreSQL COPY.

Each group is an original scene prompt and one perturbation (two objects swapped), both
rendered by two generator configs: four candidates and four pairs per group (two same-prompt
pairs, two counterfactual pairs whose intended winner is the original's image), each pair
judged by three annotators. Column lists come from the Django models, so a field another app
adds with a default is filled with that default.

Keys-only pairs point at image keys that need not exist; the images queue stores real PNGs
(content-addressed) in the local media folder, reused across candidates.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import connection, models

SCENES = ["kitchen", "living room", "classroom", "garden", "office", "bedroom", "cafe", "garage"]
OBJECTS = [
    "cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock", "plant", "bottle", "laptop",
    "teapot", "candle", "apple", "bowl", "guitar", "backpack", "umbrella", "kettle", "radio",
]  # fmt: skip
RELATIONS = [
    ("left_of", "to the left of"), ("right_of", "to the right of"), ("above", "above"),
    ("below", "below"), ("in_front_of", "in front of"), ("behind", "behind"),
    ("next_to", "next to"), ("on_top_of", "on top of"),
]  # fmt: skip
# (a, b) votes per pattern: candidate a on the left.
VOTE_PATTERNS = [
    ("left", "left", "left"), ("left", "left", "right"), ("right", "right", "left"),
    ("left", "tie", "left"), ("tie", "tie", "right"), ("right", "right", "right"),
    ("both_wrong", "left", "left"), ("left", "right", "tie"),
]  # fmt: skip
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _copy(model: type[models.Model], rows: Iterable[dict[str, Any]], *, ids: bool = True) -> int:
    """COPY rows into the model's table; unspecified columns get the field's default.

    With `ids=False` the rows name no id and the table's identity numbers them.
    """
    fields = [f for f in model._meta.concrete_fields if ids or not f.primary_key]
    columns = [f.column for f in fields]
    defaults = {}
    for f in fields:
        if f.has_default() or (not f.null and f.empty_strings_allowed):
            value = f.get_default()
            defaults[f.column] = json.dumps(value) if isinstance(value, dict | list) else value
        else:
            defaults[f.column] = None
    count = 0
    with connection.cursor() as cursor:
        sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[c] if c in row else defaults[c] for c in columns])
                count += 1
        if ids:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{model._meta.db_table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {model._meta.db_table}))"
            )
    return count


def _prompt_text(g: int, swapped: bool) -> tuple[str, dict, str, str]:
    rnd = random.Random(g)
    scene = SCENES[g % len(SCENES)]
    a, b, c = rnd.sample(OBJECTS, 3)
    (r1, w1), (r2, w2) = rnd.sample(RELATIONS, 2)
    if swapped:
        a, b = b, a
    text = (
        f"In a quiet {scene} lit by soft afternoon light, a small {a} stands {w1} a large {b}, "
        f"while a {c} rests {w2} the {b}; the walls are pale and the floor is wooden "
        f"(scene {g})"
    )
    structure = {
        "objects": [
            {"id": "o1", "name": a, "count": 1, "attributes": {"size": "small"}},
            {"id": "o2", "name": b, "count": 1, "attributes": {"size": "large"}},
            {"id": "o3", "name": c, "count": 1, "attributes": {}},
        ],
        "relations": [
            {"subject": "o1", "relation": r1, "objects": ["o2"]},
            {"subject": "o3", "relation": r2, "objects": ["o2"]},
        ],
        "scene": scene,
    }
    return text, structure, f"|{'|'.join(sorted({r1, r2}))}|", f"|{'|'.join(sorted({a, b, c}))}|"


def bench_image_bytes(index: int, size: int = 256) -> bytes:
    """A 256x256 PNG (gradient, shapes, mild noise: about 110 KB), fixed by `index`."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(index)
    x = np.linspace(0, 1, size)
    base = np.stack(
        [np.outer(x, 1 - x) * 255, np.outer(1 - x, x) * 255, np.full((size, size), index % 256)],
        -1,
    )
    base += rng.normal(0, 6, base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    shapes = random.Random(index)
    for _ in range(6):
        left, top = shapes.randrange(size), shapes.randrange(size)
        draw.rectangle(
            [left, top, left + shapes.randrange(10, 80), top + shapes.randrange(10, 80)],
            fill=(shapes.randrange(256), shapes.randrange(256), shapes.randrange(256)),
        )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def load(
    *, pairs: int, queue_name: str, annotator_ids: list[int], media_root: Path | None,
    distinct_images: int = 500, first_group: int = 0,
) -> dict[str, int]:  # fmt: skip
    """Load `pairs` judged pairs (a multiple of 4) into a new queue; returns row counts."""
    from annotation.models import Judgment, LabelingQueue, Pair
    from generation_workers.models import (
        Campaign,
        Candidate,
        GeneratorConfig,
        Prompt,
        PromptSet,
    )

    groups = pairs // 4
    tag = uuid.uuid4().hex[:6]
    prompt_set = PromptSet.objects.create(
        name=f"bench-{tag}", source="template", status="ready", prompt_count=2 * groups
    )
    campaign = Campaign.objects.create(name=f"bench-{tag}", prompt_set=prompt_set)
    configs = [
        GeneratorConfig.objects.create(name=f"bench-{tag}-sdxl", backend="procedural"),
        GeneratorConfig.objects.create(name=f"bench-{tag}-flux", backend="procedural"),
    ]
    queue = LabelingQueue.objects.create(name=queue_name, overlap=3)
    now = datetime.now(UTC)

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM generation_workers_prompt")
        prompt_base = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM generation_workers_candidate")
        candidate_base = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_pair")
        pair_base = cursor.fetchone()[0]

    images: list[tuple[str, str]] = []
    if media_root is not None:
        for index in range(distinct_images):
            data = bench_image_bytes(index)
            sha = hashlib.sha256(data).hexdigest()
            key = f"candidates/{sha[:2]}/{sha}.png"
            path = media_root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            images.append((key, sha))

    def prompt_rows():
        for i in range(groups):
            g = first_group + i
            for swapped in (False, True):
                text, structure, relations, objects = _prompt_text(g, swapped)
                yield {
                    "id": prompt_base + 2 * i + 1 + swapped,
                    "prompt_set_id": prompt_set.pk,
                    "text": text,
                    "normalized_text": text.lower(),
                    "structure": json.dumps(structure),
                    "tier": 3,
                    "relation_keys": relations,
                    "object_keys": objects,
                    "group_key": hashlib.sha256(f"group-{g}".encode()).hexdigest()[:32],
                    "parent_id": prompt_base + 2 * i + 1 if swapped else None,
                    "perturbation_type": "swap" if swapped else "",
                    "perturbation": json.dumps({"swap": ["o1", "o2"]} if swapped else {}),
                    "num_perturbations": 1 if swapped else 0,
                }

    def candidate_rows():
        for i in range(groups):
            for slot in range(4):
                cid = candidate_base + 4 * i + slot + 1
                if images:
                    key, sha = images[(4 * i + slot) % len(images)]
                else:
                    sha = hashlib.sha256(f"image-{cid}".encode()).hexdigest()
                    key = f"candidates/{sha[:2]}/{sha}.png"
                yield {
                    "id": cid,
                    "campaign_id": campaign.pk,
                    "prompt_id": prompt_base + 2 * i + 1 + slot // 2,
                    "config_id": configs[slot % 2].pk,
                    "seed": 1000 + i,
                    "params_hash": "p" * 64,
                    "status": "done",
                    "storage_key": key,
                    "content_sha256": sha,
                    "width": 256,
                    "height": 256,
                    "created_at": now,
                    "finished_at": now,
                }

    pair_list: list[tuple[int, int, int, int | None, str]] = []

    def pair_rows():
        for i in range(groups):
            original, perturbed = prompt_base + 2 * i + 1, prompt_base + 2 * i + 2
            c = candidate_base + 4 * i
            specs = [
                (c + 1, c + 2, original, None, "same_prompt"),
                (c + 3, c + 4, perturbed, None, "same_prompt"),
                (c + 1, c + 3, original, c + 1, "counterfactual"),
                (c + 2, c + 4, original, c + 2, "counterfactual"),
            ]
            for slot, (a, b, prompt, intended, kind) in enumerate(specs):
                pid = pair_base + 4 * i + slot + 1
                pair_list.append((pid, a, b, intended, kind))
                yield {
                    "id": pid,
                    "queue_id": queue.pk,
                    "candidate_a_id": a,
                    "candidate_b_id": b,
                    "kind": kind,
                    "prompt_id": prompt,
                    "intended_winner_id": intended,
                    "judgments_needed": 3,
                    "judgments_count": 3,
                    "fresh": False,
                    "created_at": now,
                }

    def judgment_rows():
        n = len(annotator_ids)
        for pid, a, b, _, _ in pair_list:
            pattern = VOTE_PATTERNS[pid % len(VOTE_PATTERNS)]
            for k, choice in enumerate(pattern):
                winner = {"left": a, "right": b}.get(choice)
                yield {
                    "pair_id": pid,
                    "annotator_id": annotator_ids[(pid + 7 * k) % n],
                    "client_submission_id": uuid.uuid4(),
                    "left_candidate_id": a,
                    "choice": choice,
                    "winner_id": winner,
                    "reason_tags": "[]",
                    "duration_ms": 1500 + (pid * 37 + k) % 4000,
                    "created_at": T0 + timedelta(seconds=(pid * 3 + k) % (30 * 86400)),
                }

    counts = {
        "prompts": _copy(Prompt, prompt_rows()),
        "candidates": _copy(Candidate, candidate_rows()),
        "pairs": _copy(Pair, pair_rows()),
    }
    counts["judgments"] = _copy(Judgment, judgment_rows(), ids=False)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return counts
