"""A tiny random-weight Stable Diffusion pipeline renders campaigns through real Celery workers
into moto's S3: metadata, content-hash keys, same seed -> same image, exactly once."""

import io
import time

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from generation_workers.models import Campaign, Candidate
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_create
from tests.conftest import s3_client
from tests.generation.conftest import campaign_wait, prompt_set_make

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def tiny_config(folder, queue, **fields):
    values = {
        "name": f"tiny-{queue}",
        "backend": "diffusers",
        "model_path": str(folder),
        "num_inference_steps": 2,
        "guidance_scale": 5.0,
        "width": 64,
        "height": 64,
        "batch_size": 4,
        "queue": queue,
        **fields,
    }
    return generator_config_create(**values)


def image_of(candidate) -> np.ndarray:
    with default_storage.open(candidate.storage_key) as handle:
        return np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"), dtype=np.int16)


def test_tiny_pipeline_campaign_renders_every_candidate_into_s3_with_its_metadata(
    tiny_sd_folder, worker_start, own_queue, s3_settings, moto_endpoint
):
    # given a set of 2 originals + 2 perturbed prompts and a tiny SD config, 2 seeds each
    prompt_set = prompt_set_make(originals=2)
    config = tiny_config(tiny_sd_folder, own_queue)
    campaign = campaign_create(
        name="tiny", prompt_set_id=prompt_set.pk, config_ids=[config.pk], seeds_per_prompt=2,
        base_seed=100,
    )  # fmt: skip
    worker = worker_start(queues=own_queue)

    # when it is launched and the worker renders it
    campaign_launch(campaign_id=campaign.pk)
    campaign = campaign_wait(campaign, workers=[worker])

    # then every candidate is done once, stored under its content hash, with its metadata
    assert campaign.status == Campaign.Status.COMPLETED
    candidates = list(Candidate.objects.filter(campaign=campaign).order_by("prompt_id", "seed"))
    assert len(candidates) == 8 == campaign.total_items
    assert {c.status for c in candidates} == {Candidate.Status.DONE}
    assert {c.attempts for c in candidates} == {1}
    for candidate in candidates:
        sha = candidate.content_sha256
        assert candidate.storage_key == f"candidates/{sha[:2]}/{sha}.png"
        assert (candidate.width, candidate.height) == (64, 64)
        assert candidate.duration_ms > 0
        params = candidate.generation_params
        assert params["seed"] == candidate.seed
        assert params["steps"] == 2
        assert params["guidance_scale"] == 5.0
        assert params["scheduler"] == "DDIMScheduler"
        assert params["pipeline_class"] == "StableDiffusionPipeline"
        assert params["model_path"] == str(tiny_sd_folder)
        assert params["model_revision"] == config.model_revision
        assert params["device"] == "cpu"
        assert params["batch_size"] == 4
    assert sorted({c.seed for c in candidates}) == [100, 101]
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        {c.storage_key for c in candidates}
    )
    head = s3_client(moto_endpoint).head_object(
        Bucket=s3_settings["S3_BUCKET"], Key=candidates[0].storage_key
    )
    assert head["ContentType"] == "image/png"

    # and the same seed gives the same image as the bare pipeline called here (within tolerance)
    import torch
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(str(tiny_sd_folder), local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    first = candidates[0]
    bare = pipeline(
        prompt=[first.prompt.text], num_inference_steps=2, guidance_scale=5.0, width=64,
        height=64, generator=[torch.Generator().manual_seed(first.seed)], output_type="np",
    ).images[0]  # fmt: skip
    stored = image_of(first)
    assert np.abs(stored - np.round(bare * 255).astype(np.int16)).max() <= 2
    # while another seed of the same prompt gives another image
    other = next(c for c in candidates if c.prompt_id == first.prompt_id and c.seed != first.seed)
    assert np.abs(image_of(other) - stored).mean() > 1


def test_a_worker_killed_mid_batch_is_replaced_and_every_candidate_is_made_exactly_once(
    tiny_sd_folder, worker_start, own_queue, s3_settings, moto_endpoint
):
    # given a campaign of two slow batches (20 steps) and a worker that has loaded the model
    # and started the forward pass of the first
    prompt_set = prompt_set_make(originals=2)
    config = tiny_config(tiny_sd_folder, own_queue, num_inference_steps=20, batch_size=2)
    campaign = campaign_create(
        name="crash", prompt_set_id=prompt_set.pk, config_ids=[config.pk], seeds_per_prompt=1
    )
    first = worker_start(queues=own_queue)
    campaign_launch(campaign_id=campaign.pk)
    deadline = time.monotonic() + 90
    while "generation.pipeline.loaded" not in first.output():  # then the forward pass starts
        assert time.monotonic() < deadline, first.output()[-3000:]
        time.sleep(0.02)

    # when it is killed with SIGKILL in the middle of that batch
    first.kill()
    in_flight = set(
        Candidate.objects.filter(campaign=campaign, leased_until__isnull=False).values_list(
            "pk", flat=True
        )
    )
    assert len(in_flight) == 2
    assert not Candidate.objects.filter(pk__in=in_flight, status=Candidate.Status.DONE).exists()

    # and another worker is started
    second = worker_start(queues=own_queue)
    campaign = campaign_wait(campaign, workers=[second], timeout=120)

    # then the campaign completes with every candidate made once; the killed batch's items
    # were claimed a second time (after their lease ran out), the others once
    assert campaign.status == Campaign.Status.COMPLETED
    candidates = list(Candidate.objects.filter(campaign=campaign))
    assert len(candidates) == 4
    assert {c.status for c in candidates} == {Candidate.Status.DONE}
    assert {c.pk: c.attempts for c in candidates} == {
        c.pk: (2 if c.pk in in_flight else 1) for c in candidates
    }
    assert "generation.leases.swept requeued=2" in second.output()
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(c.storage_key for c in candidates)
