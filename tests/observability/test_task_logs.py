"""Request ids across the broker: a task queued by a request logs under that request's id, with
its own id and name, in a real Celery worker's JSON lines; a task nobody's request queued
(Celery beat) gets an id of its own, and passes it on to the tasks it queues."""

import io
import json
import logging
import re
import time

import pytest

from config.celery import Queue
from config.logs import JsonFormatter, RequestIdFilter
from generation_workers.models import Campaign, Candidate
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import (
    generator_config_create,
    generator_config_procedural_ensure,
)
from generation_workers.tasks import recover_task, render_batch
from tests.generation.conftest import (  # noqa: F401 (worker_start, own_queue: fixtures)
    campaign_wait,
    own_queue,
    prompt_set_make,
    queue_purge,
    queue_taken,
    worker_start,
)


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _task_lines(worker, task_id: str, *, timeout: float = 30) -> list[dict]:
    """The worker's lines for the task, once Celery's own line for its end is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [e for e in _json_lines(worker.output()) if e.get("task_id") == task_id]
        if any("succeeded" in e["message"] for e in lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish:\n{worker.output()[-3000:]}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_workers_log_lines_for_a_task_carry_the_request_id_that_queued_it(
    worker_start,  # noqa: F811
    lead_client,
):
    # given a worker writing JSON lines, and a campaign a lead launches through the API with the
    # proxy's request id
    queue_purge(Queue.GPU)
    config = generator_config_procedural_ensure(name="procedural", width=64, height=64)
    campaign = campaign_create(
        name="ids", prompt_set_id=prompt_set_make(originals=1).pk, config_ids=[config.pk],
        seeds_per_prompt=1,
    )  # fmt: skip
    worker = worker_start(queues=Queue.GPU, env={"LOG_FORMAT": "json"})

    response = lead_client.post(
        f"/api/generation/campaigns/{campaign.pk}/launch/", headers={"X-Request-ID": "edge-42"}
    )
    assert response.status_code == 200, response.content
    assert campaign_wait(campaign, workers=[worker]).status == Campaign.Status.COMPLETED

    # then the batch's lines (the app's and Celery's own) carry the request's id and the task's
    (batch,) = [e for e in _json_lines(worker.output()) if "generation.batch.done" in e["message"]]
    assert batch["request_id"] == "edge-42"
    assert batch["task_name"] == "generation.render_batch"
    lines = _task_lines(worker, batch["task_id"])
    assert {(e["request_id"], e["task_name"]) for e in lines} == {
        ("edge-42", "generation.render_batch")
    }
    assert any(e["logger"] == "celery.app.trace" for e in lines)

    # when tasks are queued outside any request (as Celery beat queues the sweeps), one of them
    # with a header that is no well-formed id (the broker is not trusted for it)
    ids = list(Candidate.objects.filter(campaign=campaign).values_list("pk", flat=True))
    plain = render_batch.apply_async(args=[config.pk, ids], queue=Queue.GPU)
    forged = render_batch.apply_async(
        args=[config.pk, ids], queue=Queue.GPU, headers={"request_id": 'x" y'}
    )

    # then each task's lines share an id of its own, and lines outside any task carry none
    own = set()
    for sent in (plain, forged):
        lines = _task_lines(worker, sent.id)
        (rid,) = {e["request_id"] for e in lines}
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        assert {e["task_name"] for e in lines} == {"generation.render_batch"}
        own.add(rid)
    assert len(own) == 2
    ready = [e for e in _json_lines(worker.output()) if e["message"].endswith(" ready.")]
    assert [(e["request_id"], "task_id" in e) for e in ready] == [("-", False)]


def _request_ids_waiting(queue: str) -> list[str | None]:
    """The `request_id` header of each message waiting in the queue, taken off it."""
    return [headers.get("request_id") for headers, _ in queue_taken(queue)]


@pytest.mark.django_db
def test_a_task_queued_by_a_sweep_carries_the_id_the_sweep_logs_under(settings, own_queue):  # noqa: F811
    # given a running campaign whose batches were never published (lost), on a queue of its own
    settings.RECOVERY_STALE_SECONDS = 0
    config = generator_config_create(
        name="ids", backend="procedural", width=64, height=64, batch_size=1, queue=own_queue
    )
    campaign = campaign_create(
        name="lost", prompt_set_id=prompt_set_make(originals=1).pk, config_ids=[config.pk]
    )
    campaign_launch(campaign_id=campaign.pk)  # on_commit does not run here: nothing published
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("generation_workers.services.recovery")
    logger.addHandler(handler)

    # when the recovery sweep runs, as beat starts it: with no request behind it
    try:
        recover_task.apply()
    finally:
        logger.removeHandler(handler)

    # then it logs under an id of its own, and the batches it queued carry that id
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["message"] == f"generation.campaign.recovered campaign={campaign.pk} items=2"
    assert entry["task_name"] == "generation.recover"
    assert re.fullmatch(r"[0-9a-f]{32}", entry["request_id"])
    assert _request_ids_waiting(own_queue) == [entry["request_id"]] * 2
