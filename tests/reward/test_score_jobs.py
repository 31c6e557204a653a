"""POST /api/reward/score/jobs and GET .../<id>: a large batch handed over, 202 until it is
done, then the synchronous answer; a bad payload refused at once; only its own account reads a
job; answers expire."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from annotation.services.annotators import user_create
from config.roles import Role
from tests.reward.held import engine_held
from tests.reward.test_scoring_api import PROMPT, b64, offline, png
from training_bridge.reward_models.services.score_jobs import KEY_PREFIX

URL = "/api/reward/score/jobs"
pytestmark = pytest.mark.django_db(transaction=True)  # the job's thread has its own connection


def client_for(username: str, role: str = Role.ML) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user_create(username=username, password="pass-12345678",
                                               role=role))  # fmt: skip
    return client


def answer_of(client: APIClient, url: str):
    """Poll until the job is done (a guard against a hang, not a timing)."""
    for _ in range(6000):
        response = client.get(url)
        if response.status_code != 202:
            return response
        threading.Event().wait(0.01)
    raise AssertionError("the job never finished")


def test_a_job_is_202_until_done_then_the_synchronous_answer(register, builtin_folders, settings):
    # given more images than one synchronous request takes
    settings.REWARD_SCORE_MAX_IMAGES = 4
    register(builtin_folders(0), promote=True)
    ml = client_for("rl-jobs")
    images = [png(1200 + i) for i in range(6)]
    body = {"items": [{"prompt": PROMPT, "image": b64(i)} for i in images]}
    assert ml.post("/api/reward/score", body, format="json").status_code == 413
    # when they are handed over as a job while the engine is busy with another pass
    with engine_held():
        created = ml.post(URL, body, format="json")
        job_url = created.json()["url"]
        waiting = ml.get(job_url)
    done = answer_of(ml, job_url)
    # then the post is a 202 with the job's URL, the poll a 202 while it waits, then a 200
    # with the scores the synchronous call gives
    assert created.status_code == 202, created.json()
    assert created["Location"] == job_url == f"{URL}/{created.json()['id']}"
    assert created.json()["expires_in"] == 3600
    assert waiting.status_code == 202
    assert waiting.json() == {"id": created.json()["id"], "status": waiting.json()["status"]}
    assert waiting.json()["status"] in ("queued", "running")
    assert waiting["Retry-After"] == "1"
    assert done.status_code == 200, done.json()
    np.testing.assert_allclose(
        [(s["mean"], s["std"]) for s in done.json()["scores"]],
        offline(builtin_folders(0), [PROMPT] * 6, images), rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    assert done.json()["model"]["version"] == 1


def test_a_bad_payload_is_refused_when_posted_and_no_job_is_made(register, builtin_folders):
    register(builtin_folders(0), promote=True)
    ml = client_for("rl-jobs-bad")
    store = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    before = set(store.scan_iter(f"{KEY_PREFIX}*"))
    response = ml.post(URL, {"items": [{"prompt": PROMPT, "image": "!"}]}, format="json")
    assert (response.status_code, response.json()["field"]) == (400, "items[0].image")
    assert set(store.scan_iter(f"{KEY_PREFIX}*")) == before


def test_a_job_that_fails_answers_the_synchronous_error(register, builtin_folders):
    register(builtin_folders(0))  # registered, none promoted
    ml = client_for("rl-jobs-409")
    created = ml.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1))}]}, format="json")
    done = answer_of(ml, created.json()["url"])
    assert (done.status_code, done.json()["field"]) == (409, "model")


def test_only_the_account_that_posted_a_job_reads_it(register, builtin_folders, annotator):
    register(builtin_folders(0), promote=True)
    owner, other = client_for("rl-owner"), client_for("rl-other")
    created = owner.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1))}]},
                         format="json")  # fmt: skip
    job_url = created.json()["url"]
    assert answer_of(owner, job_url).status_code == 200
    assert other.get(job_url).status_code == 404
    assert other.get(job_url).json()["field"] == "job_id"
    assert APIClient().get(job_url).status_code == 401
    annotator_client = APIClient()
    annotator_client.force_authenticate(user=annotator)
    assert annotator_client.get(job_url).status_code == 403
    assert annotator_client.post(URL, {"items": []}, format="json").status_code == 403
    assert owner.get(f"{URL}/not-a-job-id").status_code == 404


def test_an_answer_is_gone_once_its_time_to_live_has_passed(register, builtin_folders, settings):
    settings.REWARD_SCORE_JOB_TTL_SECONDS = 1
    register(builtin_folders(0), promote=True)
    ml = client_for("rl-ttl")
    created = ml.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1))}]}, format="json")
    assert created.json()["expires_in"] == 1
    assert answer_of(ml, created.json()["url"]).status_code == 200
    store = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    key = f"{KEY_PREFIX}{created.json()['id']}"
    assert 0 < store.pttl(key) <= 1000  # the answer is kept for the TTL after it was written
    for _ in range(300):  # Redis expires it (a guard against a hang, not a timing)
        if not store.exists(key):
            break
        threading.Event().wait(0.01)
    gone = ml.get(created.json()["url"])
    assert gone.status_code == 404
    assert "kept 1 s" in gone.json()["detail"]


def test_past_the_queue_limit_a_post_is_a_503_with_retry_after(register, builtin_folders, settings):
    settings.REWARD_SCORE_JOBS_MAX_QUEUED = 1
    settings.REWARD_SCORE_JOBS_THREADS = 1
    register(builtin_folders(0), promote=True)
    ml = client_for("rl-queue")
    body = {"items": [{"prompt": PROMPT, "image": b64(png(1))}]}
    with engine_held():
        first = ml.post(URL, body, format="json")  # taken by the one job thread, which waits
        urls = [first.json()["url"]]
        statuses = []
        for _ in range(3):  # one more waits in the queue, the next is refused
            response = ml.post(URL, body, format="json")
            statuses.append(response.status_code)
            if response.status_code == 202:
                urls.append(response.json()["url"])
            else:
                refused = response
    assert statuses.count(503) >= 1
    assert refused.json()["error"] == "busy" and refused["Retry-After"] == "1"
    assert all(answer_of(ml, url).status_code == 200 for url in urls)


def test_a_job_store_that_does_not_answer_is_a_503_with_retry_after(
    register, builtin_folders, settings
):
    # given the jobs' Redis at a port where nothing listens (a store that is down)
    register(builtin_folders(0), promote=True)
    ml = client_for("rl-no-redis")
    settings.REWARD_SCORE_JOBS_REDIS_URL = "redis://127.0.0.1:1/0"
    posted = ml.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1))}]}, format="json")
    polled = ml.get(f"{URL}/{'0' * 32}")
    # then both are retryable 503s, and the scoring API itself still answers
    for response in (posted, polled):
        assert response.status_code == 503, response.json()
        assert (response.json()["error"], response["Retry-After"]) == ("jobs_unavailable", "5")
    scored = ml.post("/api/reward/score", {"items": [{"prompt": PROMPT, "image": b64(png(1))}]},
                     format="json")  # fmt: skip
    assert scored.status_code == 200
