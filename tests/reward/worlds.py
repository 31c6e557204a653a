"""A campaign of procedural scenes for active learning: original prompts and their flipped
copies, each drawn for a few seeds by the procedural renderer and stored through the
generation service (content-hash keys), as finished candidates of one campaign."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.utils import timezone

from generation_workers.backends.procedural import render
from generation_workers.models import Campaign, Candidate, Prompt, PromptSet
from generation_workers.services.configs import generator_config_procedural_ensure
from generation_workers.services.images import candidate_image_store

SCENES = [
    ("cat", "left_of", "dog"),
    ("cup", "above", "lamp"),
    ("book", "right_of", "vase"),
    ("chair", "below", "clock"),
    ("dog", "left_of", "book"),
    ("lamp", "above", "cat"),
]
FLIP = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above",
         "below": "below"}  # fmt: skip


@dataclass
class SceneCampaign:
    campaign: Campaign
    originals: list[Prompt]
    candidates: list[Candidate]


def _prompt(prompt_set, subject, relation, reference, group, parent=None) -> Prompt:
    text = f"a photo of a {subject} {WORDS[relation]} a {reference}"
    return Prompt.objects.create(
        prompt_set=prompt_set, text=text, normalized_text=text,
        structure={
            "objects": [{"id": "o1", "name": subject, "count": 1, "attributes": {}},
                        {"id": "o2", "name": reference, "count": 1, "attributes": {}}],
            "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
            "scene": None,
        },
        relation_keys=f"|{relation}|", object_keys=f"|{'|'.join(sorted({subject, reference}))}|",
        group_key=group, parent=parent, perturbation_type="flip" if parent else "",
        perturbation={"relation": 0, "to": relation} if parent else {},
        num_perturbations=1 if parent else 0,
    )  # fmt: skip


def scene_campaign(*, scenes: int = 4, seeds: int = 2, size: int = 32) -> SceneCampaign:
    tag = uuid.uuid4().hex[:8]
    prompt_set = PromptSet.objects.create(
        name=f"al-{tag}", source=PromptSet.Source.TEMPLATE, status=PromptSet.Status.READY
    )
    config = generator_config_procedural_ensure(name=f"procedural-{size}", width=size, height=size)
    now = timezone.now()
    campaign = Campaign.objects.create(
        name=f"al-{tag}", prompt_set=prompt_set, status=Campaign.Status.COMPLETED,
        started_at=now, finished_at=now,
    )  # fmt: skip
    campaign.configs.set([config])
    originals, candidates = [], []
    for index, (subject, relation, reference) in enumerate(SCENES[:scenes]):
        original = _prompt(prompt_set, subject, relation, reference, f"{tag}-{index}")
        flipped = _prompt(
            prompt_set, subject, FLIP[relation], reference, f"{tag}-{index}", parent=original
        )
        originals.append(original)
        for prompt in (original, flipped):
            for seed in range(seeds):
                drawn = render(prompt.structure, seed=seed, width=size, height=size, fmt="png")
                key, sha = candidate_image_store(data=drawn.encoded, fmt="png")
                candidates.append(
                    Candidate.objects.create(
                        campaign=campaign,
                        prompt=prompt,
                        config=config,
                        seed=seed,
                        params_hash="p" * 64,
                        status=Candidate.Status.DONE,
                        storage_key=key,
                        content_sha256=sha,
                        width=size,
                        height=size,
                    )  # fmt: skip
                )
    return SceneCampaign(campaign=campaign, originals=originals, candidates=candidates)
