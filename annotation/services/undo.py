"""Undo: the annotator takes back their last answer while its lease still holds.

Idempotent under retries: a browser whose undo's response was lost sends the same undo again.
The submission id then names an answer already in `UndoneJudgment`; the retry changes
nothing and answers as the first undo did (the pair, while this annotator still holds it),
or says why it cannot now (the lease ran out, or the pair was answered again since). It
never takes back another answer.
"""

import logging
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Assignment, Judgment, Pair, UndoneJudgment
from annotation.selectors import labeling_queue_for_labeling
from annotation.services.assignment import leased_items
from annotation.services.results import LeasedItem
from config.errors import Conflict, NotFound, ValidationFailed

log = logging.getLogger(__name__)


def judgment_undo(
    *, user: AbstractBaseUser, queue_id: int, client_submission_id: uuid.UUID | str
) -> LeasedItem:
    """Take back the annotator's last answer in this queue while its lease still holds.

    The pair goes back on their screen (the lease is active again, same presentation order);
    the submission id stays spent. Returns the pair as `next` shows it. A retry of an undo
    that took effect returns the same without writing anything.
    """
    try:
        sid = uuid.UUID(str(client_submission_id))
    except ValueError:
        raise ValidationFailed(
            "client_submission_id must be a UUID", field="client_submission_id"
        ) from None
    queue = labeling_queue_for_labeling(queue_id=queue_id, user=user)
    judgment = (
        Judgment.objects.filter(client_submission_id=sid, annotator=user, pair__queue_id=queue.pk)
        .only("id", "pair_id", "created_at")
        .first()
    )
    if judgment is None:
        return _undone_before(user=user, queue_id=queue.pk, sid=sid)
    last = (
        Judgment.objects.filter(annotator=user, pair__queue_id=queue.pk)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    if last != judgment.pk:
        raise Conflict(
            "only your last answer in this queue can be undone",
            field="client_submission_id",
            code="not_last_answer",
        )
    if not _take_back(user=user, judgment_id=judgment.pk, pair_id=judgment.pair_id):
        # A copy of this undo sent at the same time took it back while this one waited for
        # the pair: answer as a retry does.
        return _undone_before(user=user, queue_id=queue.pk, sid=sid)
    log.info("labeling.judgment.undone pair=%s user=%s", judgment.pair_id, user.pk)
    return leased_items(user=user, pair_ids=[judgment.pair_id])[0]


def _take_back(*, user: AbstractBaseUser, judgment_id: int, pair_id: int) -> bool:
    """Move the judgment to UndoneJudgment and put the lease back; False when it is gone."""
    now = timezone.now()
    with transaction.atomic():
        pair = Pair.objects.select_for_update().get(pk=pair_id)
        lease = Assignment.objects.select_for_update().get(pair=pair, annotator=user)
        judgment = Judgment.objects.select_for_update().filter(pk=judgment_id).first()
        if judgment is None:
            return False
        if lease.expires_at <= now:
            raise _lease_expired()
        counted = judgment.choice != Judgment.Choice.SKIP
        if not counted and pair.judgments_count + pair.reserved_count >= pair.judgments_needed:
            raise Conflict(
                "the slot you skipped has gone to someone else", field="pair", code="pair_taken"
            )
        UndoneJudgment.objects.create(
            client_submission_id=judgment.client_submission_id,
            pair=pair,
            annotator=user,
            choice=judgment.choice,
            judged_at=judgment.created_at,
        )
        judgment.delete()
        Assignment.objects.filter(pk=lease.pk).update(status=Assignment.Status.ACTIVE)
        # A counted answer taken back: the pair is collecting votes again. (A gold answer
        # keeps its count in the annotator's standing: the first answer to a gold pair is the
        # one that counts, services/judgments.py.)
        Pair.objects.filter(pk=pair.pk).update(
            judgments_count=F("judgments_count") - (1 if counted else 0),
            reserved_count=F("reserved_count") + 1,
            resolution=Pair.Resolution.OPEN if counted else pair.resolution,
            disputed=False if counted else pair.disputed,
        )
    return True


def _undone_before(*, user: AbstractBaseUser, queue_id: int, sid: uuid.UUID) -> LeasedItem:
    """A retried undo: the pair as the first undo returned it while this annotator still
    holds it, or the 409 the first undo would give now. Reads only."""
    pair_id = (
        UndoneJudgment.objects.filter(
            client_submission_id=sid, annotator=user, pair__queue_id=queue_id
        )
        .values_list("pair_id", flat=True)
        .first()
    )
    if pair_id is None:
        raise NotFound("no answer of yours with this submission id", field="client_submission_id")
    lease = (
        Assignment.objects.filter(pair_id=pair_id, annotator=user)
        .values_list("status", "expires_at")
        .first()
    )
    status, expires_at = lease if lease is not None else (None, None)
    if status == Assignment.Status.ACTIVE and expires_at > timezone.now():
        items = leased_items(user=user, pair_ids=[pair_id])
        if items:  # else the lease was let go meanwhile: as after an expiry
            log.info("labeling.judgment.undo_replayed pair=%s user=%s", pair_id, user.pk)
            return items[0]
    if status == Assignment.Status.SUBMITTED:
        raise Conflict(
            "this answer was undone already, and the pair answered again since",
            field="client_submission_id",
            code="submission_undone",
        )
    raise _lease_expired()


def _lease_expired() -> Conflict:
    return Conflict(
        "the lease on this pair has run out; the answer can no longer be undone",
        field="client_submission_id",
        code="lease_expired",
    )
