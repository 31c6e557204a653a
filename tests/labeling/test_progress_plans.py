"""`progress` (every open labeling page asks each minute) reads a bounded number of rows,
whatever the queue's consumed front or today's judgments, and whatever the statistics say.

Statistics here are taken before the front of the queue was served and before today's
judgments existed (as when autovacuum has not analyzed since, or is off): the plans that read
the table's consumed front, or every judgment made today, look cheap to the planner then.
"""

import uuid
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation import selectors
from annotation.models import Judgment, Pair
from annotation.selectors import annotator_progress
from annotation.services import statements
from annotation.services.queues import labeling_queue_pause
from config.errors import Conflict, Forbidden, NotFound
from tests.labeling.factories import annotators, queue_with_pairs
from tests.labeling.plans import rows_read

pytestmark = pytest.mark.django_db

CAP = 40  # the count's cap for this test (AVAILABLE_COUNT_CAP), small to keep the data small
SERVED = 4_000  # the front of the serving order, fully judged
JUDGED_BY_OTHERS = 300  # pairs judged by others, yesterday, and as many again today


def test_progress_reads_at_most_the_cap_of_pairs_and_only_the_annotators_judgments_today(
    monkeypatch,
):
    # given a queue whose statistics were taken while every pair was fresh and every judgment
    # was from yesterday
    monkeypatch.setattr(selectors, "AVAILABLE_COUNT_CAP", CAP)
    queue, made = queue_with_pairs(n_pairs=50)
    with connection.cursor() as cursor:  # every other pair of its 100 candidates: 4,950 pairs
        cursor.execute(
            """
            INSERT INTO annotation_pair (queue_id, candidate_a_id, candidate_b_id, kind,
                prompt_id, priority, judgments_needed, judgments_count, reserved_count, fresh,
                is_gold, created_at)
            SELECT %(queue)s, c.id, d.id, 'same_prompt', %(prompt)s, 0, 3, 0, 0, true, false,
                   now()
            FROM generation_workers_candidate c JOIN generation_workers_candidate d
              ON c.id < d.id
            ON CONFLICT DO NOTHING
            """,
            {"queue": queue.pk, "prompt": made[0].prompt_id},
        )
    pairs = list(Pair.objects.filter(queue=queue).order_by("id"))
    me, *others = annotators(4)
    yesterday = timezone.now() - timedelta(days=1, hours=1)

    def judge(pair, annotator, when) -> None:
        Judgment.objects.filter(pk=Judgment.objects.create(
            pair=pair, annotator=annotator, client_submission_id=uuid.uuid4(),
            choice=Judgment.Choice.LEFT, winner_id=pair.candidate_a_id,
            left_candidate_id=pair.candidate_a_id,
        ).pk).update(created_at=when)  # fmt: skip

    for i, pair in enumerate(pairs[:JUDGED_BY_OTHERS]):
        judge(pair, others[i % 3], yesterday)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_pair")
        cursor.execute("ANALYZE annotation_judgment")
    # then the front of the queue was served, and judged today, mostly by others
    Pair.objects.filter(pk__in=[p.pk for p in pairs[:SERVED]]).update(
        fresh=False, judgments_count=3
    )
    now = timezone.now()
    for i, pair in enumerate(pairs[JUDGED_BY_OTHERS : 2 * JUDGED_BY_OTHERS]):
        judge(pair, others[i % 3], now)
    # (and the last pair of the table: a gold pair sits anywhere in a queue's ids)
    for pair in [*pairs[1000:1003], pairs[-1]]:
        judge(pair, me, now)

    # when the annotator's page asks for progress
    progress = annotator_progress(user=me, queue_id=queue.pk)

    # then the answer is right
    assert (progress.done_today, progress.skipped_today, progress.held) == (4, 0, 0)
    assert (progress.available, progress.available_capped) == (CAP, True)
    # and its statement read neither the served front of the queue nor the other annotators'
    # judgments
    midnight = timezone.make_aware(
        datetime.combine(timezone.localdate(), datetime.min.time())
    )  # fmt: skip
    sql = statements.progress_sql(cap=CAP + 1)
    params = {"queue": queue.pk, "user": me.pk, "since": midnight}
    pair_rows = rows_read(sql, params, "annotation_pair", filtered=True)
    judgment_rows = rows_read(sql, params, "annotation_judgment", filtered=True)
    # each count's entries (fresh ones, then open ones) and the 4 judgments' pairs
    assert pair_rows <= 2 * (CAP + 1) + 4, pair_rows
    assert judgment_rows <= 4, judgment_rows


def test_progress_of_a_queue_the_annotator_may_not_label_names_why():
    # given a paused queue and a queue of other annotators
    paused, _ = queue_with_pairs(n_pairs=1, name="paused")
    labeling_queue_pause(queue_id=paused.pk)
    theirs, _ = queue_with_pairs(
        n_pairs=1, name="theirs", allowed_group_names=[], allowed_users=annotators(1, "x")
    )
    me = annotators(1)[0]
    # when the annotator asks for progress in each, then the usual errors come back
    with pytest.raises(Conflict) as paused_error:
        annotator_progress(user=me, queue_id=paused.pk)
    with pytest.raises(Forbidden):
        annotator_progress(user=me, queue_id=theirs.pk)
    with pytest.raises(NotFound):
        annotator_progress(user=me, queue_id=theirs.pk + 1000)
    assert paused_error.value.code == "queue_paused"


@pytest.mark.django_db(transaction=True)
def test_the_hot_path_statements_never_compile_their_plans():
    # A generic plan's estimate can cross jit_above_cost (a parameter's selectivity unknown):
    # then PostgreSQL compiled `progress` on every call, 20 ms for a 1.5 ms statement.
    # (A new connection, in autocommit as in production: the settings are the connection's.)
    from config.db import statement_run

    connection.close()
    statement_run("SELECT 1 FROM (SELECT 1) AS one", {})
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_generic_plan"
