"""Lost broker messages, end to end: the broker's messages are deleted mid-campaign and
mid-export, or the broker cannot be reached when work is asked for, and the work still
finishes with no manual step: a real worker running Celery beat (-B, as `make demo` does)
sends the recovery sweeps, which publish the work again.

Only this test's queues in this Redis database are emptied (never FLUSHALL)."""

import json
import os
import subprocess
import textwrap
import time
import uuid

import pytest
from django.utils import timezone

from config.celery import Queue, queue_waiting
from generation_workers.models import Campaign, Candidate
from generation_workers.services.batches import batch_render
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_create
from generation_workers.services.recovery import campaigns_recover
from tests.conftest import VENV_BIN, _free_port
from tests.datasets.factories import judge_bulk, version_frozen, world_build
from tests.generation.conftest import REPO, campaign_wait, database_url_of_test, prompt_set_make
from tests.recovery.conftest import messages, queue_purge
from training_bridge.datasets.services.exports import dataset_export_request
from training_bridge.datasets.services.recovery import dataset_exports_recover
from training_bridge.models import DatasetExport

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("broker_emptied"),
]

# The worker's beat: a sweep every second, work silent for 3 s is stale.
FAST_RECOVERY = {"RECOVERY_SWEEP_SECONDS": "1", "RECOVERY_STALE_SECONDS": "3"}


def procedural_campaign(queue: str) -> Campaign:
    config = generator_config_create(
        name="lost", backend="procedural", width=64, height=64, batch_size=2, queue=queue
    )
    return campaign_create(
        name="lost", prompt_set_id=prompt_set_make(originals=3).pk, config_ids=[config.pk]
    )


def exports_wait(exports, worker, timeout: float = 90) -> list[DatasetExport]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(DatasetExport.objects.filter(pk__in=[e.pk for e in exports]).order_by("pk"))
        if all(e.status in ("done", "failed") for e in found):
            return found
        time.sleep(0.3)
    raise AssertionError(f"exports not finished:\n{worker.output()[-4000:]}")


def test_work_whose_messages_were_deleted_finishes_with_beat_and_a_worker(worker_start, own_queue):
    # given a campaign launched while no worker ran, one of its 3 batches rendered, and the
    # other two batches deleted from the broker
    campaign = procedural_campaign(own_queue)
    campaign_launch(campaign_id=campaign.pk)  # committed: its batches are published
    assert queue_waiting(own_queue) == 3
    first = list(Candidate.objects.filter(campaign=campaign).order_by("pk")[:2])
    assert batch_render(config_id=first[0].config_id, candidate_ids=[c.pk for c in first]).done == 2
    queue_purge(own_queue)

    # and two exports of a frozen version: one queued whose message was deleted, one left
    # running by a worker killed mid-export (its owner's last beat is now)
    world = world_build(groups=2)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    version = version_frozen(dataset_name="lost", filter_spec={"queues": [world.queue.name]})
    queued = dataset_export_request(version_id=version.pk, format="jsonl")
    killed = dataset_export_request(version_id=version.pk, format="parquet", include_images=False)
    DatasetExport.objects.filter(pk=killed.pk).update(
        status="running", run_token=uuid.uuid4(), heartbeat_at=timezone.now(), records_done=3
    )
    queue_purge(Queue.CPU)
    assert (queue_waiting(own_queue), queue_waiting(Queue.CPU)) == (0, 0)

    # when a worker with beat runs (nobody publishes anything by hand)
    worker = worker_start(
        queues=f"{Queue.CPU},{own_queue}", concurrency=2, env=FAST_RECOVERY, beat=True
    )

    # then the campaign completes and both exports finish
    campaign = campaign_wait(campaign, workers=[worker], timeout=120)
    assert campaign.status == Campaign.Status.COMPLETED
    rows = Candidate.objects.filter(campaign=campaign).values_list("status", "attempts")
    assert sorted(rows) == [("done", 1)] * 6
    found = exports_wait([queued, killed], worker)
    assert [(e.status, e.run_token, e.records_done) for e in found] == [("done", None, 8)] * 2
    output = worker.output()
    assert "generation.campaign.recovered" in output
    assert "dataset.export.recovered" in output


BROKER_DOWN_SCRIPT = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username="lead"))
    launch = client.post("/api/generation/campaigns/{campaign}/launch/")
    export = client.post(
        "/api/dataset-versions/{version}/exports/", {{"format": "jsonl"}}, format="json"
    )
    print(json.dumps({{
        "launch": [launch.status_code, launch.json()["campaign"]["status"]],
        "export": [export.status_code, export.json()[0]["status"]],
    }}))
    """
)


def test_a_launch_and_an_export_asked_while_the_broker_is_down_are_saved_and_published_later(
    lead, own_queue, s3_settings
):
    # given a draft campaign and a frozen version, and a web process whose broker is down
    campaign = procedural_campaign(own_queue)
    world = world_build(groups=1)
    judge_bulk(world, lambda pair: ["left"])
    version = version_frozen(dataset_name="down", filter_spec={"queues": [world.queue.name]})
    env = {
        **os.environ,
        **s3_settings,
        "DATABASE_URL": database_url_of_test(),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{_free_port()}/5",  # nothing listens there
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }

    # when a lead launches the campaign and asks for an export through the API
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c",
         BROKER_DOWN_SCRIPT.format(campaign=campaign.pk, version=version.pk)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # then both answer cleanly, with the rows saved: the campaign running, the export queued
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == {"launch": [200, "running"], "export": [202, "queued"]}
    assert "celery.publish.failed task=training_bridge.dataset_export.run" in done.stderr
    assert "generation.batches.publish_failed" in done.stderr
    assert (queue_waiting(own_queue), queue_waiting(Queue.CPU)) == (0, 0)
    campaign.refresh_from_db()
    ids = sorted(Candidate.objects.filter(campaign=campaign).values_list("pk", flat=True))
    assert (campaign.status, len(ids)) == ("running", 6)
    export = DatasetExport.objects.get(version=version)

    # and once the broker is back the sweeps publish them (a period after the requests)
    later = timezone.now() + timezone.timedelta(seconds=601)
    assert campaigns_recover(now=later, stale_after=600) == 6
    config_id = Candidate.objects.get(pk=ids[0]).config_id
    assert messages(own_queue) == [
        ("generation.render_batch", [config_id, ids[i : i + 2]], {}) for i in (0, 2, 4)
    ]
    assert dataset_exports_recover(now=later, stale_after=600) == [export.pk]
    assert messages(Queue.CPU) == [
        ("training_bridge.dataset_export.run", [], {"export_id": export.pk})
    ]
