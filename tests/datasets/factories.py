"""Test worlds for datasets: prompt groups, candidates with real image bytes, pairs, judgments.

Built straight through the ORM (bulk_create where sizes grow), independently of the labeling
services, with images stored under their content-hash keys in the default storage.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from annotation.models import AnnotatorProfile, Judgment, LabelingQueue, Pair
from generation_workers.models import Campaign, Candidate, GeneratorConfig, Prompt, PromptSet

RELATIONS = ["left_of", "right_of", "above", "below"]
OBJECTS = ["cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock"]


def png_bytes(index: int, size: int = 8) -> bytes:
    """A small real PNG whose pixels depend on `index`."""
    image = Image.new("RGB", (size, size), ((index * 37) % 256, (index * 91) % 256, index % 251))
    image.putpixel((0, 0), (index % 256, (index // 256) % 256, 7))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_store(data: bytes) -> tuple[str, str]:
    """Store bytes under their content-hash key (once); returns (key, sha256)."""
    sha = hashlib.sha256(data).hexdigest()
    key = f"candidates/{sha[:2]}/{sha}.png"
    storage = storages["default"]
    if not storage.exists(key):
        storage.save(key, ContentFile(data))
    return key, sha


@dataclass
class World:
    queue: LabelingQueue
    campaign: Campaign
    configs: list[GeneratorConfig]
    annotators: list
    pairs: list[Pair] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


def annotators_make(count: int, *, prefix: str = "rater") -> list:
    User = get_user_model()
    users = []
    for index in range(count):
        user, _ = User.objects.get_or_create(username=f"{prefix}{index}")
        AnnotatorProfile.objects.get_or_create(user=user)
        users.append(user)
    return users


def world_build(
    *,
    groups: int,
    queue_name: str = "spatial-queue",
    annotators: int = 3,
    store_images: bool = True,
    distinct_images: int | None = None,
    group_prefix: str = "g",
) -> World:
    """`groups` prompt groups (an original and one swapped perturbation), each rendered by two
    configs, giving 4 pairs per group: a same-prompt pair per prompt and two counterfactual
    pairs (original vs perturbed, same config; the original's image is the intended winner).

    With `distinct_images`, candidates reuse that many stored images (content-addressed keys
    may repeat); otherwise every candidate has its own image.
    """
    prompt_set = PromptSet.objects.create(
        name=f"set-{uuid.uuid4().hex[:8]}", source="template", status="ready"
    )
    campaign = Campaign.objects.create(
        name=f"campaign-{uuid.uuid4().hex[:8]}", prompt_set=prompt_set
    )
    configs = [
        GeneratorConfig.objects.create(
            name=f"model-{uuid.uuid4().hex[:6]}-{i}", backend="procedural"
        )
        for i in range(2)
    ]
    queue = LabelingQueue.objects.create(name=f"{queue_name}-{uuid.uuid4().hex[:6]}", overlap=3)
    users = annotators_make(annotators)
    world = World(queue=queue, campaign=campaign, configs=configs, annotators=users)

    originals = []
    for g in range(groups):
        subject, reference = OBJECTS[g % len(OBJECTS)], OBJECTS[(g + 3) % len(OBJECTS)]
        relation = RELATIONS[g % len(RELATIONS)]
        text = f"a {subject} {relation.replace('_', ' ')} a {reference} (scene {group_prefix}{g})"
        originals.append(
            Prompt(
                prompt_set=prompt_set,
                text=text,
                normalized_text=text,
                structure={
                    "objects": [{"id": "o1", "name": subject}, {"id": "o2", "name": reference}],
                    "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
                    "scene": None,
                },
                relation_keys=f"|{relation}|",
                object_keys=f"|{'|'.join(sorted({subject, reference}))}|",
                group_key=f"{group_prefix}{g}",
            )
        )
    Prompt.objects.bulk_create(originals)
    originals = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("id"))
    perturbed = []
    for original in originals:
        text = f"swapped: {original.text}"
        perturbed.append(
            Prompt(
                prompt_set=prompt_set,
                text=text,
                normalized_text=text,
                structure=original.structure,
                relation_keys=original.relation_keys,
                object_keys=original.object_keys,
                group_key=original.group_key,
                parent=original,
                perturbation_type="swap",
                perturbation={"swap": ["o1", "o2"]},
                num_perturbations=1,
            )
        )
    Prompt.objects.bulk_create(perturbed)
    perturbed_by_parent = {
        p.parent_id: p for p in Prompt.objects.filter(prompt_set=prompt_set, parent__isnull=False)
    }
    world.groups = [p.group_key for p in originals]

    stored: dict[int, tuple[str, str]] = {}

    def image_for(index: int) -> tuple[str, str]:
        slot = index if distinct_images is None else index % distinct_images
        if slot not in stored:
            data = png_bytes(slot + 1)
            stored[slot] = (
                image_store(data)
                if store_images
                else (
                    f"candidates/{hashlib.sha256(data).hexdigest()[:2]}/"
                    f"{hashlib.sha256(data).hexdigest()}.png",
                    hashlib.sha256(data).hexdigest(),
                )
            )
        return stored[slot]

    candidates = []
    index = 0
    for original in originals:
        for prompt in (original, perturbed_by_parent[original.pk]):
            for config in configs:
                key, sha = image_for(index)
                index += 1
                candidates.append(
                    Candidate(
                        campaign=campaign,
                        prompt=prompt,
                        config=config,
                        seed=7,
                        params_hash="p" * 64,
                        status="done",
                        storage_key=key,
                        content_sha256=sha,
                        width=8,
                        height=8,
                    )
                )
    Candidate.objects.bulk_create(candidates)
    by_key = {(c.prompt_id, c.config_id): c.pk for c in Candidate.objects.filter(campaign=campaign)}
    pairs = []
    for original in originals:
        perturbation = perturbed_by_parent[original.pk]
        for prompt in (original, perturbation):
            a, b = sorted(by_key[(prompt.pk, c.pk)] for c in configs)
            pairs.append(
                Pair(
                    queue=queue,
                    candidate_a_id=a,
                    candidate_b_id=b,
                    kind="same_prompt",
                    prompt=prompt,
                )
            )
        for config in configs:
            winner = by_key[(original.pk, config.pk)]
            a, b = sorted((winner, by_key[(perturbation.pk, config.pk)]))
            pairs.append(
                Pair(
                    queue=queue,
                    candidate_a_id=a,
                    candidate_b_id=b,
                    kind="counterfactual",
                    prompt=original,
                    intended_winner_id=winner,
                )
            )
    Pair.objects.bulk_create(pairs)
    world.pairs = list(Pair.objects.filter(queue=queue).order_by("id"))
    return world


def judge(pair: Pair, annotator, choice: str, *, left_is_a: bool = True) -> Judgment:
    """One judgment; `choice` is left/right/tie/both_wrong/skip with candidate a on the left."""
    left = pair.candidate_a_id if left_is_a else pair.candidate_b_id
    right = pair.candidate_b_id if left_is_a else pair.candidate_a_id
    winner = {"left": left, "right": right}.get(choice)
    judgment = Judgment.objects.create(
        pair=pair,
        annotator=annotator,
        client_submission_id=uuid.uuid4(),
        left_candidate_id=left,
        choice=choice,
        winner_id=winner,
    )
    if choice != "skip":
        Pair.objects.filter(pk=pair.pk).update(judgments_count=pair.judgments_count + 1)
        pair.judgments_count += 1
    return judgment


def judge_bulk(world: World, choices_for) -> int:
    """Judgments for every pair: `choices_for(pair)` gives one choice per annotator (or None
    for no judgment), candidate a always on the left. Returns how many were created."""
    rows = []
    for pair in world.pairs:
        for annotator, choice in zip(world.annotators, choices_for(pair), strict=False):
            if choice is None:
                continue
            winner = {"left": pair.candidate_a_id, "right": pair.candidate_b_id}.get(choice)
            rows.append(
                Judgment(
                    pair=pair,
                    annotator=annotator,
                    client_submission_id=uuid.uuid4(),
                    left_candidate_id=pair.candidate_a_id,
                    choice=choice,
                    winner_id=winner,
                )
            )
    Judgment.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def prefer(side: str, pair: Pair) -> str:
    """The left/right choice (candidate a on the left) that prefers `side` ('a'/'b'/'intended')."""
    if side == "intended":
        side = "a" if pair.intended_winner_id == pair.candidate_a_id else "b"
    return "left" if side == "a" else "right"


def version_frozen(*, dataset_name: str, filter_spec: dict, split_spec: dict | None = None):
    """Create a version with the services and freeze it in this process."""
    from training_bridge.datasets.services.datasets import (
        dataset_get_or_create,
        dataset_version_create,
    )
    from training_bridge.datasets.services.freezing import dataset_version_freeze

    dataset = dataset_get_or_create(name=dataset_name)
    version = dataset_version_create(
        dataset_id=dataset.pk, filter_spec=filter_spec, split_spec=split_spec or {}
    )
    return dataset_version_freeze(version_id=version.pk)


def records_of(version) -> list[tuple[int, str, str, str]]:
    """(pair id, label, split, canonical line) of a version's records, in canonical order."""
    return list(
        version.records.order_by("position").values_list("pair_id", "label", "split", "canonical")
    )
