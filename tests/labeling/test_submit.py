"""Submit, undo and progress through the API."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Judgment, Pair, UndoneJudgment
from annotation.services.assignment import leases_reclaim_expired
from tests.labeling.factories import (
    annotators,
    client_for,
    image_shown,
    next_url,
    queue_with_pairs,
    submit_url,
)

pytestmark = pytest.mark.django_db


def take(user, queue, count=1) -> list[int]:
    response = client_for(user).post(next_url(queue), {"count": count}, format="json")
    assert response.status_code == 200, response.content
    return [item["pair"] for item in response.json()["items"]]


def post_submit(user, queue, pair_id, choice="left", sid=None, **extra):
    body = {"pair": pair_id, "client_submission_id": str(sid or uuid.uuid4()), "choice": choice}
    body.update(extra)
    return client_for(user).post(submit_url(queue), body, format="json")


def image_of(user, image: dict) -> str:
    return image_shown(user, image["url"]).content_sha256


def counters(pair) -> tuple[int, int]:
    pair.refresh_from_db()
    return pair.judgments_count, pair.reserved_count


def test_the_side_shown_is_mapped_to_the_candidate_through_the_presentation_order():
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    take(ann, queue, 2)
    lease0 = Assignment.objects.get(annotator=ann, pair=pairs[0])
    lease1 = Assignment.objects.get(annotator=ann, pair=pairs[1])

    assert post_submit(ann, queue, pairs[0].pk, "left").status_code == 201
    assert post_submit(ann, queue, pairs[1].pk, "right").status_code == 201

    left_pick = Judgment.objects.get(pair=pairs[0])
    right_pick = Judgment.objects.get(pair=pairs[1])
    assert (left_pick.left_candidate_id, left_pick.winner_id) == (
        lease0.left_candidate_id,
        lease0.left_candidate_id,
    )
    other = {pairs[1].candidate_a_id, pairs[1].candidate_b_id} - {lease1.left_candidate_id}
    assert (right_pick.left_candidate_id, right_pick.winner_id) == (
        lease1.left_candidate_id,
        other.pop(),
    )
    assert [counters(p) for p in pairs] == [(1, 0), (1, 0)]
    assert set(Assignment.objects.values_list("status", flat=True)) == {"submitted"}


def test_submit_stores_reason_tags_and_time_on_item_and_answers_201():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid = uuid.uuid4()

    response = post_submit(
        ann,
        queue,
        pair.pk,
        "both_wrong",
        sid=sid,
        reason_tags=["object:o1", "relation:0"],
        duration_ms=2300,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["replayed"] is False
    assert {k: v for k, v in body["judgment"].items() if k != "created_at"} == {
        "pair": pair.pk,
        "client_submission_id": str(sid),
        "choice": "both_wrong",
        "reason_tags": ["object:o1", "relation:0"],
        "duration_ms": 2300,
    }
    stored = Judgment.objects.get()
    assert (stored.choice, stored.winner_id, stored.reason_tags, stored.duration_ms) == (
        "both_wrong",
        None,
        ["object:o1", "relation:0"],
        2300,
    )


def test_a_retried_submit_returns_the_stored_judgment_and_stores_nothing_new():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid = uuid.uuid4()
    first = post_submit(ann, queue, pair.pk, "left", sid=sid, duration_ms=900)

    retry = post_submit(ann, queue, pair.pk, "right", sid=sid, duration_ms=5)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == {
        "judgment": first.json()["judgment"],
        "replayed": True,
        "feedback": None,
    }
    assert Judgment.objects.count() == 1
    assert counters(pair) == (1, 0)


def test_a_submission_id_reused_for_another_pair_is_a_409_and_stores_nothing():
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    take(ann, queue, 2)
    sid = uuid.uuid4()
    post_submit(ann, queue, pairs[0].pk, sid=sid)

    response = post_submit(ann, queue, pairs[1].pk, sid=sid)

    assert response.status_code == 409
    assert response.json()["error"] == "submission_id_reused"
    assert response.json()["field"] == "client_submission_id"
    assert list(Judgment.objects.values_list("pair_id", flat=True)) == [pairs[0].pk]
    assert counters(pairs[1]) == (0, 1)


def test_another_annotators_submission_id_is_a_409_and_reveals_nothing():
    queue, pairs = queue_with_pairs(n_pairs=1)
    a, b = annotators(2)
    take(a, queue)
    take(b, queue)
    sid = uuid.uuid4()
    post_submit(a, queue, pairs[0].pk, "left", sid=sid)

    response = post_submit(b, queue, pairs[0].pk, "right", sid=sid)

    assert response.status_code == 409
    assert response.json()["error"] == "submission_id_reused"
    assert "left" not in response.json()["detail"]
    assert Judgment.objects.count() == 1
    assert counters(pairs[0]) == (1, 1)


def test_submit_without_a_lease_is_a_409():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)

    response = post_submit(ann, queue, pair.pk)

    assert response.status_code == 409
    assert response.json() == {
        "error": "no_lease",
        "detail": "you hold no lease on this pair; ask for next",
        "field": "pair",
    }
    assert Judgment.objects.count() == 0
    assert counters(pair) == (0, 0)


def test_submit_on_a_complete_pair_is_a_409_and_the_pair_completes_at_its_overlap():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=2)
    a, b, c = annotators(3)
    take(a, queue)
    take(b, queue)
    assert post_submit(a, queue, pair.pk).status_code == 201
    assert post_submit(b, queue, pair.pk, "tie").status_code == 201

    response = post_submit(c, queue, pair.pk)

    assert response.status_code == 409
    assert response.json()["error"] == "pair_complete"
    assert counters(pair) == (2, 0)
    assert pair.is_complete
    assert take(c, queue) == []
    assert Judgment.objects.count() == 2


def test_a_second_answer_on_the_same_pair_is_a_409():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    post_submit(ann, queue, pair.pk, "left")

    response = post_submit(ann, queue, pair.pk, "right")

    assert response.status_code == 409
    assert response.json()["error"] == "already_judged"
    assert list(Judgment.objects.values_list("choice", flat=True)) == ["left"]
    assert counters(pair) == (1, 0)


def _expire(user) -> None:
    Assignment.objects.filter(annotator=user).update(
        leased_at=timezone.now() - timedelta(minutes=11),
        expires_at=timezone.now() - timedelta(minutes=1),
    )


def test_a_late_submit_is_honoured_while_the_lease_still_holds_its_slot():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=1)
    (ann,) = annotators(1)
    take(ann, queue)
    _expire(ann)  # past its time, not yet swept: the slot is still reserved

    response = post_submit(ann, queue, pair.pk)

    assert response.status_code == 201
    assert counters(pair) == (1, 0)


def test_a_late_submit_after_the_sweep_is_honoured_while_a_slot_is_free():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=2)
    (ann,) = annotators(1)
    take(ann, queue)
    _expire(ann)
    assert leases_reclaim_expired() == 1
    assert counters(pair) == (0, 0)

    response = post_submit(ann, queue, pair.pk)

    assert response.status_code == 201
    assert counters(pair) == (1, 0)
    assert Assignment.objects.get(annotator=ann).status == "submitted"


def test_a_late_submit_is_a_409_once_its_slot_went_to_someone_else():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=1)
    late, quick = annotators(2)
    take(late, queue)
    _expire(late)
    assert take(quick, queue) == [pair.pk]

    response = post_submit(late, queue, pair.pk)

    assert response.status_code == 409
    assert response.json()["error"] == "lease_expired"
    assert Judgment.objects.count() == 0
    assert counters(pair) == (0, 1)


def test_a_skip_is_stored_does_not_count_and_the_pair_goes_to_someone_else():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=1)
    skipper, other = annotators(2)
    take(skipper, queue)

    response = post_submit(skipper, queue, pair.pk, "skip")

    assert response.status_code == 201
    stored = Judgment.objects.get()
    assert (stored.choice, stored.winner_id) == ("skip", None)
    assert counters(pair) == (0, 0)
    assert take(skipper, queue) == []
    assert take(other, queue) == [pair.pk]


def undo(user, queue, sid):
    return client_for(user).post(
        f"/api/labeling/queues/{queue.pk}/undo/", {"client_submission_id": str(sid)}, format="json"
    )


def test_undo_takes_back_the_last_answer_and_puts_the_pair_back_on_screen():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    shown = client_for(ann).post(next_url(queue), {"count": 1}, format="json").json()["items"][0]
    sid = uuid.uuid4()
    post_submit(ann, queue, pair.pk, "left", sid=sid)

    response = undo(ann, queue, sid)

    assert response.status_code == 200, response.content
    assert response.json()["pair"] == pair.pk
    assert image_of(ann, response.json()["left"]) == image_of(ann, shown["left"])
    assert image_of(ann, response.json()["right"]) == image_of(ann, shown["right"])
    assert Judgment.objects.count() == 0
    assert list(UndoneJudgment.objects.values_list("client_submission_id", "choice")) == [
        (sid, "left")
    ]
    assert Assignment.objects.get(annotator=ann).status == "active"
    assert counters(pair) == (0, 1)
    assert take(ann, queue) == [pair.pk]
    assert post_submit(ann, queue, pair.pk, "right").status_code == 201
    assert counters(pair) == (1, 0)


def test_a_retry_of_an_undone_submission_is_a_409_and_stores_nothing():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid = uuid.uuid4()
    post_submit(ann, queue, pair.pk, "left", sid=sid)
    undo(ann, queue, sid)

    response = post_submit(ann, queue, pair.pk, "left", sid=sid)

    assert response.status_code == 409
    assert response.json()["error"] == "submission_undone"
    assert Judgment.objects.count() == 0
    assert counters(pair) == (0, 1)


def test_only_the_last_answer_can_be_undone():
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    take(ann, queue, 2)
    first, second = uuid.uuid4(), uuid.uuid4()
    post_submit(ann, queue, pairs[0].pk, sid=first)
    post_submit(ann, queue, pairs[1].pk, sid=second)

    response = undo(ann, queue, first)

    assert response.status_code == 409
    assert response.json()["error"] == "not_last_answer"
    assert Judgment.objects.count() == 2
    assert undo(ann, queue, second).status_code == 200
    assert undo(ann, queue, first).status_code == 200
    assert Judgment.objects.count() == 0


def test_undo_after_the_lease_ran_out_is_a_409():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid = uuid.uuid4()
    post_submit(ann, queue, pair.pk, sid=sid)
    _expire(ann)

    response = undo(ann, queue, sid)

    assert response.status_code == 409
    assert response.json()["error"] == "lease_expired"
    assert Judgment.objects.count() == 1
    assert counters(pair) == (1, 0)


def test_undo_of_a_skip_whose_slot_went_to_someone_else_is_a_409():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=1)
    skipper, other = annotators(2)
    take(skipper, queue)
    sid = uuid.uuid4()
    post_submit(skipper, queue, pair.pk, "skip", sid=sid)
    take(other, queue)

    response = undo(skipper, queue, sid)

    assert response.status_code == 409
    assert response.json()["error"] == "pair_taken"
    assert Judgment.objects.count() == 1
    assert counters(pair) == (0, 1)


def labeling_state() -> tuple:
    """Every row the labeling loop writes, to show that a request wrote nothing."""
    return (
        list(Judgment.objects.values_list("id", "pair_id", "client_submission_id", "choice")),
        list(
            UndoneJudgment.objects.values_list(
                "id", "pair_id", "client_submission_id", "choice", "undone_at"
            )
        ),
        list(
            Assignment.objects.values_list(
                "id", "pair_id", "annotator_id", "left_candidate_id", "status", "expires_at"
            )
        ),
        list(Pair.objects.values_list("id", "judgments_count", "reserved_count", "fresh")),
    )


def test_an_undo_sent_again_returns_the_pair_again_and_changes_nothing():
    # Given an answer taken back, whose response the browser never got
    queue, pairs = queue_with_pairs(n_pairs=2)
    ann, other = annotators(2)
    take(ann, queue, 2)
    sid = uuid.uuid4()
    post_submit(ann, queue, pairs[0].pk, "left", sid=sid)
    first = undo(ann, queue, sid)
    before = labeling_state()

    # When the browser sends the same undo again (and someone else sends its id)
    again = undo(ann, queue, sid)
    foreign = undo(other, queue, sid)

    # Then it gets the pair as the first undo returned it, and nothing changed
    assert first.status_code == again.status_code == 200, again.content
    assert again.json()["pair"] == first.json()["pair"] == pairs[0].pk
    assert set(again.json()) == set(first.json())
    assert again.json()["prompt"] == first.json()["prompt"]
    assert again.json()["lease_expires_at"] == first.json()["lease_expires_at"]
    for side in ("left", "right"):
        assert image_of(ann, again.json()[side]) == image_of(ann, first.json()[side])
        assert again.json()[side]["url"] != first.json()[side]["url"]
    assert foreign.status_code == 404
    assert labeling_state() == before
    assert list(UndoneJudgment.objects.values_list("client_submission_id", flat=True)) == [sid]
    assert counters(pairs[0]) == (0, 1)


def test_an_undo_sent_again_after_other_requests_undoes_no_other_answer():
    # Given an answer taken back, then another answer and a heartbeat
    queue, pairs = queue_with_pairs(n_pairs=3)
    (ann,) = annotators(1)
    take(ann, queue, 3)
    sid, later = uuid.uuid4(), uuid.uuid4()
    post_submit(ann, queue, pairs[0].pk, "left", sid=sid)
    assert undo(ann, queue, sid).status_code == 200
    assert post_submit(ann, queue, pairs[1].pk, "right", sid=later).status_code == 201
    heartbeat = client_for(ann).post(
        f"/api/labeling/queues/{queue.pk}/heartbeat/", {"pairs": [pairs[0].pk]}, format="json"
    )
    assert heartbeat.status_code == 200
    before = labeling_state()

    # When the first undo arrives again
    response = undo(ann, queue, sid)

    # Then it answers for the pair it took back; the later answer stands
    assert response.status_code == 200, response.content
    assert response.json()["pair"] == pairs[0].pk
    assert labeling_state() == before
    assert list(Judgment.objects.values_list("client_submission_id", "choice")) == [
        (later, "right")
    ]
    assert counters(pairs[1]) == (1, 0)


def test_an_undo_sent_again_after_the_lease_ran_out_is_a_409_lease_expired():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid = uuid.uuid4()
    post_submit(ann, queue, pair.pk, "left", sid=sid)
    assert undo(ann, queue, sid).status_code == 200
    _expire(ann)
    before = labeling_state()

    late = undo(ann, queue, sid)  # past its time, not yet swept

    assert late.status_code == 409
    assert late.json() == {
        "error": "lease_expired",
        "detail": "the lease on this pair has run out; the answer can no longer be undone",
        "field": "client_submission_id",
    }
    assert labeling_state() == before
    assert leases_reclaim_expired() == 1
    swept = labeling_state()
    assert undo(ann, queue, sid).json()["error"] == "lease_expired"
    assert labeling_state() == swept


def test_an_undo_sent_again_after_the_pair_was_answered_again_is_a_409():
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    take(ann, queue)
    sid, again = uuid.uuid4(), uuid.uuid4()
    post_submit(ann, queue, pair.pk, "left", sid=sid)
    assert undo(ann, queue, sid).status_code == 200
    assert post_submit(ann, queue, pair.pk, "right", sid=again).status_code == 201
    before = labeling_state()

    response = undo(ann, queue, sid)

    assert response.status_code == 409
    assert response.json()["error"] == "submission_undone"
    assert labeling_state() == before
    assert list(Judgment.objects.values_list("client_submission_id", "choice")) == [
        (again, "right")
    ]


def test_progress_counts_todays_answers_and_the_pairs_left():
    queue, pairs = queue_with_pairs(n_pairs=5, overlap=1)
    (ann,) = annotators(1)
    take(ann, queue, 3)
    post_submit(ann, queue, pairs[0].pk, "left")
    post_submit(ann, queue, pairs[1].pk, "skip")

    response = client_for(ann).get(f"/api/labeling/queues/{queue.pk}/progress/")

    assert response.status_code == 200
    # Left: the skipped pair (free again) and two fresh ones; the held one has no free slot.
    assert response.json() == {
        "done_today": 2,
        "skipped_today": 1,
        "daily_target": None,
        "held": 1,
        "left_in_queue": 3,
        "left_in_queue_capped": False,
    }
    assert Pair.objects.filter(judgments_count=1).count() == 1
