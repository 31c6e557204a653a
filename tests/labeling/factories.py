"""Labeling test data: candidates with real image bytes in the default storage, queues of pairs.

Built on tests/factories.py; images are small PNGs drawn with Pillow and stored under their
content-hash keys, as the generation workers store them.
"""

import hashlib
import io
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from annotation.models import Assignment, LabelingQueue, Pair
from annotation.services.annotators import user_create
from annotation.services.images import (
    ImageSource,
    image_reference_resolve,
    image_reference_source,
)
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from config.roles import Role
from generation_workers.models import Candidate
from tests.factories import CampaignFactory, CandidateFactory, GeneratorConfigFactory, PromptFactory


def png_bytes(seed: int, size: int = 64) -> bytes:
    image = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, 120))
    draw = ImageDraw.Draw(image)
    draw.rectangle((seed % size // 2, 4, seed % size // 2 + 10, 20), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def candidate_with_image(*, store: bool = True, size: int = 64, **kwargs) -> Candidate:
    """A finished candidate whose image bytes exist under their content-hash key."""
    seed = kwargs.get("seed")
    candidate = CandidateFactory(**kwargs)
    data = png_bytes(candidate.pk if seed is None else seed * 1000 + candidate.pk, size)
    sha = hashlib.sha256(data).hexdigest()
    key = f"candidates/{sha[:2]}/{sha}.png"
    if store and not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    Candidate.objects.filter(pk=candidate.pk).update(content_sha256=sha, storage_key=key)
    candidate.refresh_from_db()
    return candidate


def annotators(n: int, prefix: str = "ann") -> list:
    return [
        user_create(username=f"{prefix}{i}", password="annotator-pass", role=Role.ANNOTATOR)
        for i in range(n)
    ]


def queue_for_annotators(**kwargs) -> LabelingQueue:
    kwargs.setdefault("name", "spatial-queue")
    kwargs.setdefault("allowed_group_names", ["annotator"])
    return labeling_queue_create(**kwargs)


def queue_with_pairs(
    *,
    n_pairs: int,
    overlap: int = 3,
    images: bool = False,
    priority_of=None,
    name: str = "spatial-queue",
    **queue_kwargs,
) -> tuple[LabelingQueue, list[Pair]]:
    """A queue open to the annotator group with `n_pairs` same-prompt pairs (ids ascending)."""
    queue = queue_for_annotators(name=name, overlap=overlap, **queue_kwargs)
    campaign = CampaignFactory()
    config = GeneratorConfigFactory()
    make = candidate_with_image if images else CandidateFactory
    pairs = []
    for i in range(n_pairs):
        prompt = PromptFactory(prompt_set=campaign.prompt_set)
        a = make(campaign=campaign, prompt=prompt, config=config)
        b = make(campaign=campaign, prompt=prompt, config=config)
        pairs.append(
            Pair.objects.create(
                queue=queue,
                candidate_a=a,
                candidate_b=b,
                kind=Pair.Kind.SAME_PROMPT,
                prompt=prompt,
                priority=priority_of(i) if priority_of else 0,
                judgments_needed=overlap,
            )
        )
    return queue, pairs


def counterfactual_queue(
    *, originals: int = 2, perturbations: int = 3, config=None, seed: int = 0, **queue_kwargs
) -> tuple[LabelingQueue, list[Candidate]]:
    """A queue of counterfactual pairs where each original image recurs in several pairs: each
    original prompt has `perturbations` perturbed copies rendered with the same config and
    seed, so its one candidate is the intended winner of `perturbations` pairs. Returns the
    queue and the originals' candidates."""
    campaign = CampaignFactory()
    config = config or GeneratorConfigFactory()
    queue = queue_for_annotators(**queue_kwargs)
    winners = []
    for i in range(originals):
        original = PromptFactory(prompt_set=campaign.prompt_set)
        winners.append(
            candidate_with_image(campaign=campaign, prompt=original, config=config, seed=seed + i)
        )
        for kind in ("flip", "swap", "replace", "flip", "swap")[:perturbations]:
            perturbed = PromptFactory(
                prompt_set=campaign.prompt_set,
                parent=original,
                perturbation_type=kind,
                num_perturbations=1,
            )
            candidate_with_image(campaign=campaign, prompt=perturbed, config=config, seed=seed + i)
    pairs_build(
        queue_id=queue.pk, campaign_id=campaign.pk, kind="counterfactual", make_thumbnails=False
    )
    assert Pair.objects.filter(queue=queue).count() == originals * perturbations
    return queue, winners


def image_shown(user, url: str) -> ImageSource:
    """The stored image behind an image URL handed to `user` (as the image view resolves it)."""
    token = url.rstrip("/").rsplit("/", 1)[1]
    reference = image_reference_resolve(user=user, token=token)
    return image_reference_source(user=user, reference=reference)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def next_url(queue) -> str:
    return f"/api/labeling/queues/{queue.pk}/next/"


def submit_url(queue) -> str:
    return f"/api/labeling/queues/{queue.pk}/submit/"


def past_answers(annotator, pairs) -> None:
    """Submitted leases of `annotator` on `pairs`, as after answering them (made directly: the
    pairs' counters are the caller's to set)."""
    leased_at = timezone.now() - timedelta(minutes=5)
    Assignment.objects.bulk_create(
        Assignment(
            pair=pair,
            annotator=annotator,
            left_candidate_id=pair.candidate_a_id,
            status=Assignment.Status.SUBMITTED,
            leased_at=leased_at,
            expires_at=leased_at + timedelta(minutes=10),
        )
        for pair in pairs
    )


def held_pair_ids(annotator) -> set[int]:
    """The pairs `annotator` holds a live lease on."""
    return set(
        Assignment.objects.filter(annotator=annotator, status="active").values_list(
            "pair_id", flat=True
        )
    )
