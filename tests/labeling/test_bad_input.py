"""Bad input gets a clear 4xx naming what is wrong, and nothing is stored."""

import uuid

import pytest
from rest_framework.test import APIClient

from annotation.models import Assignment, Judgment, LabelingQueue, Pair, UndoneJudgment
from annotation.services.queues import labeling_queue_pause
from tests.labeling.factories import (
    annotators,
    client_for,
    next_url,
    queue_for_annotators,
    queue_with_pairs,
    submit_url,
)

pytestmark = pytest.mark.django_db


def state() -> tuple:
    """Everything a labeling request could write."""
    return (
        sorted(Judgment.objects.values_list("pair_id", "annotator_id", "choice")),
        sorted(Assignment.objects.values_list("pair_id", "annotator_id", "status", "expires_at")),
        sorted(Pair.objects.values_list("id", "judgments_count", "reserved_count", "fresh")),
        UndoneJudgment.objects.count(),
    )


@pytest.fixture
def held():
    """A queue of two pairs; the annotator holds the first."""
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    client = client_for(ann)
    assert client.post(next_url(queue), {"count": 1}, format="json").status_code == 200
    return queue, pairs, ann, client


def submit_body(pair_id, **changes):
    body = {"pair": pair_id, "client_submission_id": str(uuid.uuid4()), "choice": "left"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    "changes, field, detail",
    [
        ({"choice": "up"}, "choice", "choice must be one of left, right, tie, both_wrong, skip"),
        ({"choice": None}, "choice", "choice must be one of left, right, tie, both_wrong, skip"),
        (
            {"client_submission_id": None},
            "client_submission_id",
            "client_submission_id is required (a UUID made once per answer)",
        ),
        (
            {"client_submission_id": "retry-1"},
            "client_submission_id",
            "client_submission_id must be a UUID",
        ),
        ({"pair": "first"}, "pair", "pair must be a pair id"),
        ({"pair": None}, "pair", "pair must be a pair id"),
        (
            {"reason_tags": ["colour"]},
            "reason_tags",
            "reason tag 'colour' is not KIND or KIND:REF with KIND one of object, relation, "
            "attribute, count, quality, other",
        ),
        (
            {"reason_tags": ["other"] * 17},
            "reason_tags",
            "reason_tags must be a list of at most 16 tags",
        ),
        (
            {"reason_tags": "object:o1"},
            "reason_tags",
            "reason_tags must be a list of at most 16 tags",
        ),
        (
            {"duration_ms": -5},
            "duration_ms",
            "duration_ms must be an integer from 0 to 86400000",
        ),
    ],
)
def test_a_malformed_submit_is_a_400_naming_the_field_and_stores_nothing(
    held, changes, field, detail
):
    queue, pairs, _, client = held
    before = state()

    response = client.post(submit_url(queue), submit_body(pairs[0].pk, **changes), format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert response.json()["field"] == field
    assert response.json()["detail"] == detail
    assert state() == before


def test_an_unknown_pair_is_a_404_and_stores_nothing(held):
    queue, _, _, client = held
    before = state()

    response = client.post(submit_url(queue), submit_body(987654), format="json")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "pair 987654 is not in this queue",
        "field": "pair",
    }
    assert state() == before


def test_a_pair_of_another_queue_is_a_404_and_stores_nothing(held):
    queue, _, ann, client = held
    other_queue, other_pairs = queue_with_pairs(n_pairs=1, name="other-queue")
    client.post(next_url(other_queue), {"count": 1}, format="json")  # held there, not here
    before = state()

    response = client.post(submit_url(queue), submit_body(other_pairs[0].pk), format="json")

    assert response.status_code == 404
    assert response.json()["field"] == "pair"
    assert state() == before


def test_an_unknown_queue_is_a_404_for_every_call(held):
    _, pairs, _, client = held
    before = state()

    for path, body in [
        ("next/", {}),
        ("submit/", submit_body(pairs[0].pk)),
        ("heartbeat/", {"pairs": [pairs[0].pk]}),
        ("undo/", {"client_submission_id": str(uuid.uuid4())}),
    ]:
        response = client.post(f"/api/labeling/queues/999999/{path}", body, format="json")
        assert response.status_code == 404, path
        assert response.json()["field"] == "queue"
    assert client.get("/api/labeling/queues/999999/progress/").status_code == 404
    assert state() == before


def test_a_queue_the_annotator_may_not_label_is_a_403_for_every_call(held):
    queue, pairs, _, _ = held
    (stranger,) = annotators(1, prefix="stranger")
    private = queue_for_annotators(
        name="private", allowed_group_names=[], allowed_users=[annotators(1, prefix="vip")[0]]
    )
    client = client_for(stranger)
    before = state()

    for path, body in [
        ("next/", {}),
        ("submit/", submit_body(pairs[0].pk)),
        ("heartbeat/", {"pairs": [pairs[0].pk]}),
        ("undo/", {"client_submission_id": str(uuid.uuid4())}),
    ]:
        response = client.post(f"/api/labeling/queues/{private.pk}/{path}", body, format="json")
        assert response.status_code == 403, path
        assert response.json() == {
            "error": "forbidden",
            "detail": "you are not one of this queue's annotators",
            "field": "queue",
        }
    assert client.get(f"/api/labeling/queues/{private.pk}/progress/").status_code == 403
    assert state() == before


def test_a_paused_queue_is_a_409_for_every_call_and_stores_nothing(held):
    queue, pairs, _, client = held
    labeling_queue_pause(queue_id=queue.pk)
    before = state()

    for path, body in [
        ("next/", {}),
        ("submit/", submit_body(pairs[0].pk)),
        ("heartbeat/", {"pairs": [pairs[0].pk]}),
        ("undo/", {"client_submission_id": str(uuid.uuid4())}),
    ]:
        response = client.post(f"/api/labeling/queues/{queue.pk}/{path}", body, format="json")
        assert response.status_code == 409, path
        assert response.json() == {
            "error": "queue_paused",
            "detail": "this queue is paused",
            "field": "queue",
        }
    assert state() == before
    assert LabelingQueue.objects.get().status == "paused"


@pytest.mark.parametrize("count", [0, 21, "many", 2.5])
def test_a_count_out_of_range_is_a_400(held, count):
    queue, _, _, client = held
    before = state()

    response = client.post(next_url(queue), {"count": count}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "count"
    assert state() == before


@pytest.mark.parametrize("known", [3, ["x"], [0], list(range(1, 102))])
def test_a_bad_known_list_is_a_400(held, known):
    queue, _, _, client = held
    before = state()

    response = client.post(next_url(queue), {"count": 2, "known": known}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": "known must be a list of at most 100 pair ids",
        "field": "known",
    }
    assert state() == before


@pytest.mark.parametrize("body", [{}, {"pairs": []}, {"pairs": ["x"]}, {"pairs": 3}])
def test_a_heartbeat_without_pairs_is_a_400(held, body):
    queue, _, _, client = held
    before = state()

    response = client.post(f"/api/labeling/queues/{queue.pk}/heartbeat/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": "pairs must be a list of 1 to 50 pair ids",
        "field": "pairs",
    }
    assert state() == before


def test_undo_of_an_unknown_submission_is_a_404(held):
    queue, _, _, client = held
    before = state()

    response = client.post(
        f"/api/labeling/queues/{queue.pk}/undo/",
        {"client_submission_id": str(uuid.uuid4())},
        format="json",
    )

    assert response.status_code == 404
    assert response.json()["field"] == "client_submission_id"
    assert state() == before


def test_a_body_that_is_not_a_json_object_is_a_400(held):
    queue, _, _, client = held
    before = state()

    response = client.post(submit_url(queue), [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "body"
    assert state() == before


def test_a_request_that_is_not_json_is_a_4xx(held):
    queue, pairs, _, client = held
    before = state()

    response = client.post(submit_url(queue), "pair=1&choice=left", content_type="text/plain")

    assert response.status_code == 415
    assert state() == before


def test_anonymous_callers_get_a_403_and_nothing_is_leased(held):
    queue, _, _, _ = held
    before = state()

    response = APIClient().post(next_url(queue), {}, format="json")

    # a 403, not a 401: the session is the first authenticator and sends no challenge
    assert response.status_code == 403
    assert response.json()["error"] == "not_authenticated"
    assert state() == before
