"""The procedural renderer end to end: a counterfactual campaign on the default gpu queue,
rendered by a real worker, each image stored with the relations its layout satisfies."""

import io
import socket
import subprocess
import time

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from config.celery import Queue
from generation_workers.models import Campaign, Candidate
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import (
    generator_config_create,
    generator_config_procedural_ensure,
)
from generation_workers.services.dispatch import candidate_batches_publish
from generation_workers.tasks import render_batch
from tests.conftest import VENV_BIN, _free_port, s3_client
from tests.generation.conftest import campaign_wait, prompt_set_make, queue_purge

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_procedural_counterfactual_campaign_renders_through_the_gpu_queue(worker_start):
    # given the demo's procedural config, a faithful and a violating one, on the gpu queue
    queue_purge(Queue.GPU)
    faithful = generator_config_procedural_ensure(name="procedural", width=128, height=128)
    broken = generator_config_procedural_ensure(
        name="procedural-violating", width=128, height=128, image_format="webp", violate=0
    )
    prompt_set = prompt_set_make(originals=3)
    campaign = campaign_create(
        name="demo", prompt_set_id=prompt_set.pk, config_ids=[faithful.pk, broken.pk],
        seeds_per_prompt=2,
    )  # fmt: skip
    worker = worker_start(queues=Queue.GPU)

    # when it runs
    campaign_launch(campaign_id=campaign.pk)
    campaign = campaign_wait(campaign, workers=[worker])

    # then every image is made; the faithful ones satisfy their relation, the others break it
    assert campaign.status == Campaign.Status.COMPLETED
    candidates = list(Candidate.objects.filter(campaign=campaign).select_related("prompt"))
    assert len(candidates) == 6 * 2 * 2
    assert {c.status for c in candidates} == {"done"}
    for candidate in candidates:
        params = candidate.generation_params
        if candidate.config_id == faithful.pk:
            assert (params["relations_hold"], params["violated"]) == ([True], None)
            assert candidate.storage_key.endswith(".png")
        else:
            assert (params["relations_hold"], params["violated"]) == ([False], 0)
            assert candidate.storage_key.endswith(".webp")
        with default_storage.open(candidate.storage_key) as handle:
            assert Image.open(io.BytesIO(handle.read())).size == (128, 128)
    # an original and its flipped copy with the same seed are different pictures
    by_key = {(c.prompt_id, c.config_id, c.seed): c for c in candidates}
    for c in candidates:
        if c.prompt.parent_id:
            original = by_key[(c.prompt.parent_id, c.config_id, c.seed)]
            assert original.content_sha256 != c.content_sha256


def test_the_same_batches_delivered_twice_render_each_candidate_once(
    worker_start, own_queue, s3_settings, moto_endpoint
):
    # given a launched campaign whose every batch is in the queue twice, one of them three
    # times under the same task id, and a worker running two batches at once
    prompt_set = prompt_set_make(originals=2)
    config = generator_config_create(
        name="proc", backend="procedural", width=256, height=256, batch_size=2, queue=own_queue
    )
    campaign = campaign_create(
        name="twice", prompt_set_id=prompt_set.pk, config_ids=[config.pk], seeds_per_prompt=1
    )
    campaign_launch(campaign_id=campaign.pk)
    assert candidate_batches_publish(campaign_id=campaign.pk) == 4
    ids = list(Candidate.objects.filter(campaign=campaign).values_list("pk", flat=True)[:2])
    for _ in range(2):
        render_batch.apply_async(args=[config.pk, ids], queue=own_queue, task_id="same-task")

    # when the worker consumes all of them
    worker = worker_start(queues=own_queue, concurrency=2)
    campaign = campaign_wait(campaign, workers=[worker])
    deadline = time.monotonic() + 30
    while worker.output().count("generation.batch.") < 6 and time.monotonic() < deadline:
        time.sleep(0.2)

    # then each candidate was claimed and rendered once, and stored once
    assert campaign.status == Campaign.Status.COMPLETED
    candidates = list(Candidate.objects.filter(campaign=campaign))
    assert len(candidates) == 4
    assert [(c.status, c.attempts) for c in candidates] == [(Candidate.Status.DONE, 1)] * 4
    output = worker.output()
    assert output.count("generation.batch.done") == 2
    assert output.count("generation.batch.skipped") == 4
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert len(listed["Contents"]) == len({c.storage_key for c in candidates}) == 4


def test_a_storage_outage_during_write_behind_is_retried_until_every_image_is_stored(
    worker_start, own_queue, s3_settings
):
    # given a worker whose S3 endpoint is down (nothing listens on its port yet)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    config = generator_config_create(
        name="outage", backend="procedural", width=64, height=64, batch_size=2, queue=own_queue
    )
    campaign = campaign_create(
        name="outage", prompt_set_id=prompt_set_make(originals=2, perturbed=False).pk,
        config_ids=[config.pk],
    )  # fmt: skip
    worker = worker_start(queues=own_queue, env={"S3_ENDPOINT_URL": endpoint})
    campaign_launch(campaign_id=campaign.pk)

    # when the writes have failed once (the items were given back for a retry)
    deadline = time.monotonic() + 60
    while not Candidate.objects.filter(campaign=campaign, attempts__gte=1, lease_token="").count():
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.2)
    moto = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        s3_client(endpoint).create_bucket(Bucket=s3_settings["S3_BUCKET"])

        # then the queued retries store every image once, and the campaign completes
        campaign = campaign_wait(campaign, workers=[worker])
        assert campaign.status == Campaign.Status.COMPLETED
        rows = list(Candidate.objects.filter(campaign=campaign).values_list("status", "attempts"))
        assert len(rows) == 2 and all(status == "done" and n >= 2 for status, n in rows)
        listed = s3_client(endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
        assert len(listed["Contents"]) == 2
        assert "generation.batch.write_retry" in worker.output()
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")
