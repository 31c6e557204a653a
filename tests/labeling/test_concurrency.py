"""16 annotators in parallel threads loop next/submit over one queue on PostgreSQL until it is
exhausted, while a saboteur expires random leases and some acknowledgements are "lost" (the
client retries the same submission). Afterwards every invariant of the loop must hold.
"""

import hashlib
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models import Count, F
from django.utils import timezone

from annotation.models import Assignment, Judgment, Pair, UndoneJudgment
from annotation.services.assignment import leases_reclaim_expired
from tests.conftest import database_url_of_test
from tests.labeling.factories import annotators, client_for, next_url, queue_with_pairs, submit_url

N_ANNOTATORS = 16
N_PAIRS = 90
OVERLAP = 3


def choice_of(annotator_index: int, pair_id: int) -> str:
    """Deterministic answers, about one in ten a skip."""
    digest = hashlib.sha256(f"{annotator_index}:{pair_id}".encode()).digest()
    if digest[0] % 10 == 0:
        return "skip"
    return ("left", "right", "tie", "both_wrong")[digest[1] % 4]


class Annotator(threading.Thread):
    def __init__(self, index: int, user, queue, stop: threading.Event) -> None:
        super().__init__(name=f"annotator-{index}")
        self.index = index
        self.user = user
        self.queue = queue
        self.stop = stop
        self.acked: dict[str, tuple[int, str]] = {}  # submission id -> (pair, choice)
        self.statuses: Counter = Counter()
        self.errors: list[str] = []
        self.rng = random.Random(index)

    def run(self) -> None:
        client = client_for(self.user)
        try:
            while not self.stop.is_set():
                response = client.post(next_url(self.queue), {"count": 3}, format="json")
                self.statuses[f"next {response.status_code}"] += 1
                if response.status_code != 200:
                    self.errors.append(f"next {response.status_code} {response.content[:200]}")
                    return
                items = response.json()["items"]
                if not items:
                    if not Pair.objects.filter(judgments_count__lt=OVERLAP).exists():
                        return  # the queue is complete
                    time.sleep(0.05)  # the last slots are held by others: ask again
                    continue
                for item in items:
                    self.answer(client, item["pair"])
        except Exception as exc:  # noqa: BLE001 - reported by the test, not swallowed
            self.errors.append(repr(exc))
        finally:
            connection.close()

    def answer(self, client, pair_id: int) -> None:
        sid = str(uuid.uuid4())
        choice = choice_of(self.index, pair_id)
        body = {"pair": pair_id, "client_submission_id": sid, "choice": choice}
        response = client.post(submit_url(self.queue), body, format="json")
        self.statuses[f"submit {response.status_code}"] += 1
        if response.status_code in (200, 201) and self.rng.random() < 0.2:
            # The acknowledgement was "lost": the client sends the same submission again.
            retry = client.post(submit_url(self.queue), body, format="json")
            self.statuses[f"retry {retry.status_code}"] += 1
            if retry.status_code != 200 or retry.json()["judgment"] != response.json()["judgment"]:
                self.errors.append(f"retry {retry.status_code} {retry.content[:200]}")
            response = retry
        if response.status_code in (200, 201):
            self.acked[sid] = (pair_id, choice)
        elif response.status_code == 409 and response.json()["error"] in (
            "lease_expired",
            "pair_complete",
        ):
            pass  # the saboteur took this lease away; the slot went to someone else
        else:
            self.errors.append(f"submit {response.status_code} {response.content[:200]}")


class Saboteur(threading.Thread):
    """Expires a random active lease every few milliseconds (a browser tab closed)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(name="saboteur")
        self.stop = stop
        self.expired = 0

    def run(self) -> None:
        rng = random.Random(7)
        try:
            while not self.stop.is_set():
                ids = list(Assignment.objects.filter(status="active").values_list("id", flat=True))
                if ids:
                    self.expired += Assignment.objects.filter(
                        id=rng.choice(ids), status="active"
                    ).update(
                        leased_at=timezone.now() - timedelta(minutes=20),
                        expires_at=timezone.now() - timedelta(minutes=10),
                    )
                    leases_reclaim_expired()
                time.sleep(0.03)
        finally:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_sixteen_annotators_in_parallel_exhaust_the_queue_and_every_invariant_holds():
    queue, pairs = queue_with_pairs(n_pairs=N_PAIRS, overlap=OVERLAP)
    users = annotators(N_ANNOTATORS)
    stop = threading.Event()
    workers = [Annotator(i, user, queue, stop) for i, user in enumerate(users)]
    saboteur = Saboteur(stop)

    saboteur.start()
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 150
    for worker in workers:
        worker.join(timeout=max(1, deadline - time.monotonic()))
    stop.set()
    saboteur.join(timeout=30)
    assert not any(w.is_alive() for w in workers), "annotators still running at the deadline"

    assert [e for w in workers for e in w.errors] == []
    # The queue completed: every pair has exactly its overlap of answers (skips aside),
    # no lease is left open and no slot is still reserved.
    assert set(Pair.objects.values_list("judgments_count", "reserved_count")) == {(OVERLAP, 0)}
    assert Assignment.objects.filter(status="active").count() == 0
    # No pair exceeds its overlap; the counter is the truth.
    answered = dict(
        Judgment.objects.exclude(choice="skip")
        .values_list("pair_id")
        .annotate(n=Count("id"))
        .values_list("pair_id", "n")
    )
    assert answered == {p.pk: OVERLAP for p in pairs}
    # No annotator judged a pair twice.
    assert (
        Judgment.objects.values("pair_id", "annotator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
        == 0
    )
    # Every acknowledged submit is stored exactly once, as acknowledged; nothing else is.
    acked = {sid: ack for w in workers for sid, ack in w.acked.items()}
    stored = {
        str(sid): (pair, choice)
        for sid, pair, choice in Judgment.objects.values_list(
            "client_submission_id", "pair_id", "choice"
        )
    }
    assert stored == acked
    # Each answer is the one its annotator gives that pair (skips included).
    by_user = {w.user.pk: w.index for w in workers}
    for pair_id, annotator_id, choice in Judgment.objects.values_list(
        "pair_id", "annotator_id", "choice"
    ):
        assert choice == choice_of(by_user[annotator_id], pair_id)
    # The winner follows the presentation order stored with each judgment.
    assert not Judgment.objects.filter(choice="left").exclude(winner=F("left_candidate")).exists()
    assert not Judgment.objects.filter(choice="right", winner=F("left_candidate")).exists()
    # The work was shared and the retries and the saboteur really happened.
    per_annotator = defaultdict(int)
    for annotator_id in Judgment.objects.values_list("annotator_id", flat=True):
        per_annotator[annotator_id] += 1
    assert len(per_annotator) >= N_ANNOTATORS // 2
    assert sum(w.statuses["retry 200"] for w in workers) > 0
    assert saboteur.expired > 0


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_one_undo_at_once_take_back_the_answer_once(settings):
    # Given an answer, and its pair locked by someone else for now
    queue, (pair,) = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    client = client_for(ann)
    assert client.post(next_url(queue), {"count": 1}, format="json").status_code == 200
    sid = str(uuid.uuid4())
    answer = {"pair": pair.pk, "client_submission_id": sid, "choice": "left"}
    assert client.post(submit_url(queue), answer, format="json").status_code == 201
    dsn = database_url_of_test()
    responses = []

    def send_undo() -> None:
        try:
            responses.append(
                client_for(ann).post(
                    f"/api/labeling/queues/{queue.pk}/undo/",
                    {"client_submission_id": sid},
                    format="json",
                )
            )
        finally:
            connection.close()

    # When the browser's undo and its retry both wait for the pair, then go on together
    # (pg_stat_activity is read outside the blocker's transaction, which would keep one
    # snapshot of it)
    with psycopg.connect(dsn) as blocker, psycopg.connect(dsn, autocommit=True) as watcher:
        blocker.execute("SELECT id FROM annotation_pair WHERE id = %s FOR UPDATE", [pair.pk])
        threads = [threading.Thread(target=send_undo) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        waiting = 0
        while waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()[0]
        assert waiting == 2
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)

    # Then both get the pair back, and the answer was taken back once
    assert [r.status_code for r in responses] == [200, 200], [r.content for r in responses]
    assert [r.json()["pair"] for r in responses] == [pair.pk, pair.pk]
    assert Judgment.objects.count() == 0
    assert UndoneJudgment.objects.count() == 1
    pair.refresh_from_db()
    assert (pair.judgments_count, pair.reserved_count) == (0, 1)
    assert Assignment.objects.get(annotator=ann).status == "active"
