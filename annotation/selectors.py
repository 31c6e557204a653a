"""Reads of the labeling data."""

from dataclasses import dataclass
from datetime import datetime, time

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.models import AnnotatorQueueState, LabelingQueue
from annotation.services import statements
from config.db import statement_run
from config.errors import Conflict, Forbidden, NotFound

# Progress counts the pairs available in a queue up to this many ("1,000+ left"): a bounded
# read of the two serving indexes, cheap enough for every open labeling page to ask each minute.
AVAILABLE_COUNT_CAP = 1_000


def queues_for_annotator(*, user: AbstractBaseUser) -> QuerySet[LabelingQueue]:
    """The active queues this user may label: listed by name or through one of their groups."""
    if not user.is_authenticated:
        return LabelingQueue.objects.none()
    return (
        LabelingQueue.objects.filter(status=LabelingQueue.Status.ACTIVE)
        .filter(Q(allowed_users=user) | Q(allowed_groups__in=user.groups.all()))
        .distinct()
        .order_by("name")
    )


def labeling_queue_for_labeling(*, queue_id: int, user: AbstractBaseUser) -> LabelingQueue:
    """The queue if this user may label it now; otherwise the precise 4xx.

    404: no such queue; 403: the user is not among its annotators; 409: the queue is paused.
    """
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    allowed = (
        user.is_authenticated
        and LabelingQueue.objects.filter(pk=queue_id)
        .filter(Q(allowed_users=user) | Q(allowed_groups__user=user))
        .exists()
    )
    if not allowed:
        raise Forbidden("you are not one of this queue's annotators", field="queue")
    if queue.status != LabelingQueue.Status.ACTIVE:
        raise Conflict("this queue is paused", field="queue", code="queue_paused")
    return queue


@dataclass(frozen=True)
class Progress:
    done_today: int
    skipped_today: int
    daily_target: int | None
    held: int
    available: int
    available_capped: bool


def annotator_progress(*, user: AbstractBaseUser, queue_id: int) -> Progress:
    """An annotator's day in a queue, and how many pairs the queue can still lease out.

    `available` counts pairs with a free slot up to AVAILABLE_COUNT_CAP (then `available_capped`)
    from the serving indexes, so its cost does not grow with the queue or the day. One
    statement (`statements.progress_sql`): every open labeling page asks each minute.
    """
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    params = {"queue": queue_id, "user": user.pk, "since": midnight}
    rows = statement_run(statements.progress_sql(cap=AVAILABLE_COUNT_CAP + 1), params)
    if not rows:  # not active, or not theirs: the same errors as every labeling call
        labeling_queue_for_labeling(queue_id=queue_id, user=user)
        raise Forbidden("you are not one of this queue's annotators", field="queue")
    done, skipped, held, fresh, open_slots, target = rows[0]
    available = fresh + open_slots
    return Progress(
        done_today=done,
        skipped_today=skipped,
        daily_target=target,
        held=held,
        available=min(available, AVAILABLE_COUNT_CAP),
        available_capped=available > AVAILABLE_COUNT_CAP,
    )


def annotator_stopped(*, queue_id: int, user: AbstractBaseUser) -> Conflict | None:
    """Why this annotator gets no pairs from the queue (paused by quality control or a lead,
    or failed its qualification), as the 409 NEXT answers; None when they may label."""
    status = (
        AnnotatorQueueState.objects.filter(queue_id=queue_id, annotator_id=user.pk)
        .values_list("status", flat=True)
        .first()
    )
    if status == AnnotatorQueueState.Status.DISQUALIFIED:
        detail = "you did not pass this queue's qualification; a lead can let you in again"
    elif status == AnnotatorQueueState.Status.PAUSED:
        detail = "a lead paused your work on this queue; they can resume it"
    else:
        return None
    return Conflict(detail, field="queue", code="annotator_paused")
