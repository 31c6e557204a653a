"""Undo: the annotator takes back their last answer while its lease still holds."""

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
    the submission id stays spent. Returns the pair as `next` shows it.
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
        raise NotFound("no answer of yours with this submission id", field="client_submission_id")
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
    now = timezone.now()
    with transaction.atomic():
        pair = Pair.objects.select_for_update().get(pk=judgment.pair_id)
        lease = Assignment.objects.select_for_update().get(pair=pair, annotator=user)
        judgment = Judgment.objects.select_for_update().filter(pk=judgment.pk).first()
        if judgment is None:
            raise NotFound(
                "no answer of yours with this submission id", field="client_submission_id"
            )
        if lease.expires_at <= now:
            raise Conflict(
                "the lease on this pair has run out; the answer can no longer be undone",
                field="client_submission_id",
                code="lease_expired",
            )
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
        Pair.objects.filter(pk=pair.pk).update(
            judgments_count=F("judgments_count") - (1 if counted else 0),
            reserved_count=F("reserved_count") + 1,
        )
    log.info("labeling.judgment.undone pair=%s user=%s", pair.pk, user.pk)
    return leased_items(user=user, pair_ids=[pair.pk])[0]
