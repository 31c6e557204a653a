"""Reads of the labeling data."""

from dataclasses import dataclass
from datetime import datetime, time

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from annotation.models import AnnotatorProfile, Assignment, Judgment, LabelingQueue, Pair
from config.errors import Conflict, Forbidden, NotFound

# Progress counts the pairs available in a queue up to this many (a bounded index read).
AVAILABLE_COUNT_CAP = 10_000


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
    from the serving indexes, so its cost does not grow with the queue.
    """
    queue = labeling_queue_for_labeling(queue_id=queue_id, user=user)
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    today = Judgment.objects.filter(
        annotator=user, created_at__gte=midnight, pair__queue_id=queue.pk
    )
    done = today.count()
    skipped = today.filter(choice=Judgment.Choice.SKIP).count()
    held = Assignment.objects.filter(
        annotator=user,
        status=Assignment.Status.ACTIVE,
        expires_at__gt=timezone.now(),
        pair__queue_id=queue.pk,
    ).count()
    open_slots = Q(fresh=False) & Q(judgments_count__lt=F("judgments_needed") - F("reserved_count"))
    available = (
        Pair.objects.filter(queue_id=queue.pk)
        .filter(Q(fresh=True) | open_slots)
        .values("id")[: AVAILABLE_COUNT_CAP + 1]
        .count()
    )
    target = (
        AnnotatorProfile.objects.filter(user=user).values_list("daily_target", flat=True).first()
    )
    return Progress(
        done_today=done,
        skipped_today=skipped,
        daily_target=target,
        held=held,
        available=min(available, AVAILABLE_COUNT_CAP),
        available_capped=available > AVAILABLE_COUNT_CAP,
    )
