"""Frozen, exported dataset versions of procedural scenes, made with the other stages' services.

Prompts: an original two-object prompt and its flipped copy per group. Candidates: both
prompts drawn by the procedural renderer and stored through the generation service
(content-hash keys). Pairs: the labeling engine's counterfactual pair builder. Judgments:
simulated annotators through the labeling engine (lease, then submit), agreeing with the
intended winner with probability `agree`. Freeze and export: the datasets' `dataset_snapshot`.
"""

from __future__ import annotations

import random
import uuid

from django.utils import timezone

from annotation.services.annotators import user_create
from annotation.services.assignment import pairs_next_for_annotator
from annotation.services.judgments import judgment_submit
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from config.roles import Role
from generation_workers.backends.procedural import render
from generation_workers.models import Campaign, Candidate, Prompt, PromptSet
from generation_workers.services.configs import generator_config_procedural_ensure
from generation_workers.services.images import candidate_image_store
from training_bridge.models import DatasetVersion

OBJECTS = ["cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock"]
FLIP = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above",
         "below": "below"}  # fmt: skip
# With group keys g<rng_seed>-<i> and this seed, 4, 6 or 12 groups put pairs in every split.
SPLIT_SPEC = {"seed": 11, "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}


def _structure(subject: str, relation: str, reference: str) -> dict:
    return {
        "objects": [
            {"id": "o1", "name": subject, "count": 1, "attributes": {}},
            {"id": "o2", "name": reference, "count": 1, "attributes": {}},
        ],
        "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
        "scene": None,
    }


def _prompt(prompt_set, subject, relation, reference, group, parent=None) -> Prompt:
    text = f"a photo of a {subject} {WORDS[relation]} a {reference}"
    return Prompt.objects.create(
        prompt_set=prompt_set,
        text=text,
        normalized_text=text,
        structure=_structure(subject, relation, reference),
        relation_keys=f"|{relation}|",
        object_keys=f"|{'|'.join(sorted({subject, reference}))}|",
        group_key=group,
        parent=parent,
        perturbation_type="flip" if parent else "",
        perturbation={"relation": 0, "to": relation} if parent else {},
        num_perturbations=1 if parent else 0,
    )


def procedural_version(
    *,
    groups: int = 12,
    seeds: int = 2,
    size: int = 32,
    annotators: int = 1,
    agree: float = 1.0,
    formats: tuple[str, ...] = ("parquet",),
    dataset_name: str = "scenes",
    rng_seed: int = 0,
) -> DatasetVersion:
    """A frozen version with its exports (images included) done, in this process."""
    from training_bridge.datasets.services.snapshots import dataset_snapshot

    rng = random.Random(rng_seed)
    tag = uuid.uuid4().hex[:8]
    prompt_set = PromptSet.objects.create(
        name=f"scenes-{tag}", source=PromptSet.Source.TEMPLATE, status=PromptSet.Status.READY
    )
    config = generator_config_procedural_ensure(name=f"procedural-{size}", width=size, height=size)
    now = timezone.now()
    campaign = Campaign.objects.create(
        name=f"scenes-{tag}", prompt_set=prompt_set, status=Campaign.Status.COMPLETED,
        started_at=now, finished_at=now,
    )  # fmt: skip
    campaign.configs.set([config])
    params_hash = "p" * 64  # as tests/factories.py: the key only needs to be stable
    combos = [(s, rel, r) for s in OBJECTS for r in OBJECTS if s != r for rel in FLIP]
    rng.shuffle(combos)
    used: set[tuple[str, str, str]] = set()
    chosen = []
    for subject, relation, reference in combos:
        flipped = (subject, FLIP[relation], reference)
        if (subject, relation, reference) in used or flipped in used:
            continue
        used.update({(subject, relation, reference), flipped})
        chosen.append((subject, relation, reference))
        if len(chosen) == groups:
            break
    for index, (subject, relation, reference) in enumerate(chosen):
        group = f"g{rng_seed}-{index}"  # deterministic: the split is a function of it
        original = _prompt(prompt_set, subject, relation, reference, group)
        flipped = _prompt(prompt_set, subject, FLIP[relation], reference, group, parent=original)
        for prompt in (original, flipped):
            for seed in range(seeds):
                drawn = render(prompt.structure, seed=seed, width=size, height=size, fmt="png")
                key, sha = candidate_image_store(data=drawn.encoded, fmt="png")
                Candidate.objects.create(
                    campaign=campaign, prompt=prompt, config=config, seed=seed,
                    params_hash=params_hash, status=Candidate.Status.DONE, storage_key=key,
                    content_sha256=sha, width=size, height=size,
                )  # fmt: skip
    raters = [
        user_create(username=f"rater-{tag}-{i}", password="rater-pass-1", role=Role.ANNOTATOR)
        for i in range(annotators)
    ]
    queue = labeling_queue_create(
        name=f"scenes-{tag}", overlap=annotators, allowed_users=raters, prefetch=10
    )
    pairs_build(
        queue_id=queue.pk, campaign_id=campaign.pk, kind="counterfactual", make_thumbnails=False
    )
    judge_all(queue_id=queue.pk, raters=raters, agree=agree, rng=rng)
    version = dataset_snapshot(
        dataset_name=dataset_name,
        filter_spec={"queues": [queue.name]},
        split_spec=SPLIT_SPEC,
        formats=list(formats),
        include_images=True,
        run_now=True,
    )
    assert version.status == DatasetVersion.Status.FROZEN, version.error
    return version


def judge_all(*, queue_id: int, raters: list, agree: float, rng: random.Random) -> int:
    """Every rater judges every pair it is leased: the intended winner with probability
    `agree`, else the other image. Returns how many judgments were stored."""
    from annotation.models import Pair

    intended = dict(
        Pair.objects.filter(queue_id=queue_id).values_list("pk", "intended_winner__content_sha256")
    )
    stored = 0
    for rater in raters:
        while True:
            items = pairs_next_for_annotator(user=rater, queue_id=queue_id, count=10)
            if not items:
                break
            for item in items:
                left_wins = item.left.content_sha256 == intended[item.pair_id]
                if rng.random() >= agree:
                    left_wins = not left_wins
                judgment_submit(
                    user=rater,
                    queue_id=queue_id,
                    pair_id=item.pair_id,
                    client_submission_id=uuid.uuid4(),
                    choice="left" if left_wins else "right",
                )
                stored += 1
    return stored
