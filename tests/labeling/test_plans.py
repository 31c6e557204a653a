"""The hot path's cost does not grow with an annotator's history (PostgreSQL plans).

`next` must never lease a pair the annotator judged: a probe of the unique (pair, annotator)
index per candidate pair. These tests run the statements as the API does (prepared, generic
plan) under EXPLAIN ANALYZE and count the assignment rows the plan touched: a plan that walks
the annotator's past leases instead touches them all, for every pair it considers.
"""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from annotation.models import Assignment, Pair
from annotation.services import statements
from annotation.services.assignment import OPEN_WINDOW, pairs_next_for_client
from tests.labeling.factories import annotators, held_pair_ids, past_answers, queue_with_pairs
from tests.labeling.plans import rows_read

pytestmark = pytest.mark.django_db

VETERAN_HISTORY = 3000  # past leases of one annotator when the statistics were taken
HISTORY = 60  # this annotator's, on the pairs at the front of the serving order
LIVE_LEASES = 150  # other annotators' leases, none of them due


def assignment_rows_touched(sql: str, params: dict) -> int:
    """Rows of annotation_assignment the statement's generic plan read, over all loops."""
    return rows_read(sql, params, "annotation_assignment")


@pytest.fixture
def veteran_and_queue():
    """The statistics of a real start: taken when one annotator's leases filled the table (its
    id is then the only common value, so the planner thinks any other annotator has ~no past
    leases). Then an annotator who judged the HISTORY pairs at the front of the serving order
    (still open to others) asks for more; fresh pairs wait behind them."""
    queue, pairs = queue_with_pairs(n_pairs=HISTORY + 10)
    annotator, veteran = annotators(2)
    prompt_id, a_id = pairs[0].prompt_id, pairs[0].candidate_a_id
    with connection.cursor() as cursor:
        # The veteran's past: VETERAN_HISTORY pairs of another queue, leased and answered.
        other_queue, _ = queue_with_pairs(n_pairs=0, name="past")
        cursor.execute(
            """
            WITH made AS (
                INSERT INTO annotation_pair (queue_id, candidate_a_id, candidate_b_id, kind,
                    prompt_id, priority, judgments_needed, judgments_count, reserved_count,
                    fresh, is_gold, created_at)
                SELECT %(queue)s, c.id, d.id, 'same_prompt', %(prompt)s, 0, 3, 0, 0, false,
                       false, now()
                FROM generation_workers_candidate c JOIN generation_workers_candidate d
                  ON c.id < d.id
                LIMIT %(n)s
                RETURNING id
            )
            INSERT INTO annotation_assignment (pair_id, annotator_id, left_candidate_id,
                status, leased_at, expires_at)
            SELECT id, %(veteran)s, %(left)s, 'submitted', now(), now() + interval '1 minute'
            FROM made
            """,
            {"queue": other_queue.pk, "prompt": prompt_id, "n": VETERAN_HISTORY,
             "veteran": veteran.pk, "left": a_id},
        )  # fmt: skip
        cursor.execute("ANALYZE annotation_assignment")
        cursor.execute("ANALYZE annotation_pair")
    past_answers(annotator, pairs[:HISTORY])
    Pair.objects.filter(pk__in=[p.pk for p in pairs[:HISTORY]]).update(
        fresh=False, judgments_count=1
    )
    return queue, pairs, annotator


def test_next_probes_each_pair_once_whatever_the_annotators_history(veteran_and_queue):
    queue, pairs, annotator = veteran_and_queue

    touched = assignment_rows_touched(
        statements.next_sql(count=3, window=OPEN_WINDOW),
        {"queue": queue.pk, "user": annotator.pk, "known": []},
    )

    # a probe per pair of the window (each finds this annotator's past lease) and the held
    # check: about the window's size, not window x history (32 x 60 = 1,920)
    assert touched <= OPEN_WINDOW + 10, touched
    assert held_pair_ids(annotator) == {p.pk for p in pairs[HISTORY : HISTORY + 3]}


def test_next_reads_one_lease_to_know_whether_any_is_due_whatever_the_live_leases(
    veteran_and_queue,
):
    # Many annotators hold leases (none due): whether a sweep is needed is the first entry
    # of the expiry index, not a walk through every live lease.
    queue, pairs, annotator = veteran_and_queue
    others = annotators(LIVE_LEASES, prefix="busy")
    now = timezone.now()
    Assignment.objects.bulk_create(
        Assignment(
            pair=pairs[HISTORY + 5 + i % 5],
            annotator=other,
            left_candidate_id=pairs[0].candidate_a_id,
            status=Assignment.Status.ACTIVE,
            leased_at=now,
            expires_at=now + timedelta(minutes=10),
        )
        for i, other in enumerate(others)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_assignment")

    touched = assignment_rows_touched(
        statements.next_sql(count=3, window=OPEN_WINDOW),
        {"queue": queue.pk, "user": annotator.pk, "known": []},
    )

    assert touched <= OPEN_WINDOW + 10 < LIVE_LEASES, touched


def test_submit_finds_the_lease_with_one_probe_whatever_the_annotators_history(
    veteran_and_queue,
):
    queue, pairs, annotator = veteran_and_queue
    pair = pairs[HISTORY]
    Assignment.objects.create(
        pair=pair,
        annotator=annotator,
        left_candidate_id=pair.candidate_a_id,
        status=Assignment.Status.ACTIVE,
        leased_at=timezone.now(),
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    Pair.objects.filter(pk=pair.pk).update(fresh=False, reserved_count=1)

    touched = assignment_rows_touched(
        statements.SUBMIT_SQL,
        {
            "queue": queue.pk,
            "user": annotator.pk,
            "pair": pair.pk,
            "sid": uuid.uuid4(),
            "choice": "left",
            "tags": Jsonb([]),
            "criteria": Jsonb({}),
            "duration": 1200,
        },
    )

    assert touched <= 3, touched
    assert Assignment.objects.get(pair=pair, annotator=annotator).status == "submitted"


def test_the_exact_scan_probes_each_started_pair_once_and_serves_the_first_she_may_take(
    veteran_and_queue,
):
    # Her HISTORY judged pairs fill the front of the serving order and nothing is fresh: the
    # window comes up short, so `next` scans the started pairs in serving order, one probe of
    # the (pair, annotator) index each, until it has found the pairs she may take.
    queue, pairs, annotator = veteran_and_queue
    Pair.objects.filter(queue=queue).update(fresh=False)
    params = {"queue": queue.pk, "user": annotator.pk, "known": []}

    exact = assignment_rows_touched(statements.next_sql(count=1, window=None), params)
    first = pairs_next_for_client(user=annotator, queue_id=queue.pk, count=2)
    second = pairs_next_for_client(user=annotator, queue_id=queue.pk, count=3)

    # her history walked once, not once per pair (HISTORY x HISTORY)
    assert HISTORY <= exact <= HISTORY + 10, exact
    assert [item.pair_id for item in first.items] == [pairs[HISTORY].pk, pairs[HISTORY + 1].pk]
    assert [item.pair_id for item in second.items] == [
        pairs[HISTORY].pk,
        pairs[HISTORY + 1].pk,
        pairs[HISTORY + 2].pk,
    ]
    assert held_pair_ids(annotator) == {p.pk for p in pairs[HISTORY : HISTORY + 3]}


def prepared_next_statements() -> int:
    """How many `next` statements this connection's backend holds prepared."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%fresh_pick%"],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_next_is_prepared_once_per_connection_and_again_on_a_new_one():
    queue, pairs = queue_with_pairs(n_pairs=4)
    (annotator,) = annotators(1)

    for _ in range(3):
        pairs_next_for_client(user=annotator, queue_id=queue.pk, count=1)
    on_first = prepared_next_statements()
    connection.close()
    pairs_next_for_client(user=annotator, queue_id=queue.pk, count=2)
    on_second = prepared_next_statements()

    # one prepared statement, reused, not parsed and planned on every call
    assert (on_first, on_second) == (1, 1)
    assert held_pair_ids(annotator) == {pairs[0].pk, pairs[1].pk}


def test_a_gold_item_reads_a_few_gold_pairs_whatever_the_gold_pool(veteran_and_queue):
    # A queue whose pool holds thousands of gold pairs (a lead made a tenth of a big build
    # gold), the annotator's next item is due to be gold: the draw walks the gold index from a
    # random key and stops at the first pair this annotator was never leased.
    queue, pairs, annotator = veteran_and_queue
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotation_pair (queue_id, candidate_a_id, candidate_b_id, kind,
                prompt_id, priority, judgments_needed, judgments_count, reserved_count,
                fresh, is_gold, gold_winner_id, gold_key, created_at)
            SELECT %(queue)s, c.id, d.id, 'same_prompt', %(prompt)s, 0, 32000, 0, 0, false,
                   true, c.id, random(), now()
            FROM generation_workers_candidate c JOIN generation_workers_candidate d
              ON c.id < d.id
            ON CONFLICT DO NOTHING
            """,
            {"queue": queue.pk, "prompt": pairs[0].prompt_id},
        )
        gold_pool = cursor.rowcount
        cursor.execute(
            "UPDATE annotation_labelingqueue SET gold_rate = 0.5 WHERE id = %s", [queue.pk]
        )
        cursor.execute(
            """INSERT INTO annotation_annotatorqueuestate (annotator_id, queue_id, status,
                 served, gold_served, next_gold_at, gold_answers, gold_correct, window_answers,
                 window_correct, reason)
               VALUES (%s, %s, 'active', 10, 5, 11, 5, 5, 5, 5, '')""",
            [annotator.pk, queue.pk],
        )
        cursor.execute("ANALYZE annotation_pair")
    assert gold_pool > 2000

    read = rows_read(
        statements.next_sql(count=3, window=OPEN_WINDOW),
        {"queue": queue.pk, "user": annotator.pk, "known": []},
        "annotation_pair",
        filtered=True,
    )

    leased = Pair.objects.filter(pk__in=held_pair_ids(annotator))
    assert leased.filter(is_gold=True).count() == 1 and leased.count() == 3
    # the window of started pairs (its index entries, then its rows), a few fresh ones, the
    # items' rows and the drawn gold pair: far below the pool
    assert read <= 2 * OPEN_WINDOW + 20 < gold_pool, read
