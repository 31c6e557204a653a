"""Reads behind the leads' queue dashboard (frontend pages only; the labeling API has its own).

A dashboard is for a person watching a queue, not the hot path: it aggregates over the queue's
pairs and recent judgments in a handful of grouped queries.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Max, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from annotation.models import Assignment, Judgment, LabelingQueue, Pair
from annotation.selectors_quality import (
    PAIRS_SHOWN,
    PairDetail,
    QueueQuality,
    pair_detail,
    pairs_in_state,
    queue_quality,
)
from config.errors import Forbidden, NotFound
from config.roles import Role, user_has_role

HOURS_SHOWN = 24
CHOICES = tuple(Judgment.Choice.values)


@dataclass(frozen=True)
class PairCounts:
    total: int
    open: int  # nobody judged or holds it yet
    in_progress: int  # judged or held, not complete
    complete: int  # its overlap reached
    held_now: int  # active leases right now


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    judgments: int


@dataclass(frozen=True)
class Agreement:
    """Left/right answers on counterfactual pairs that picked the intended winner."""

    agree: int
    decided: int  # left or right answers on counterfactual pairs
    undecided: int  # tie or both wrong on counterfactual pairs

    @property
    def rate(self) -> float | None:
        return self.agree / self.decided if self.decided else None


@dataclass(frozen=True)
class AnnotatorRow:
    username: str
    judgments: int  # skips excluded
    skips: int
    today: int
    last_at: datetime | None
    agreement: Agreement


@dataclass(frozen=True)
class Audience:
    """Who may label a queue: its groups and users by name (both empty: nobody sees it)."""

    groups: list[str]
    users: list[str]

    @property
    def nobody(self) -> bool:
        return not self.groups and not self.users


@dataclass(frozen=True)
class QueueDashboard:
    queue: LabelingQueue
    visible_to: Audience
    pairs: PairCounts
    hours: list[HourCount]  # the last HOURS_SHOWN hours, oldest first, empty hours included
    last_hour: int
    per_hour_24h: float
    choices: dict[str, int]
    left_share: float | None  # share of left among left/right answers (position bias)
    agreement: Agreement
    annotators: list[AnnotatorRow]
    counterfactual_pairs: int


def dashboard_queues(*, user: AbstractBaseUser) -> QuerySet[LabelingQueue]:
    """Every queue, for a lead; nothing for anyone else."""
    if not user_has_role(user, Role.LEAD):
        return LabelingQueue.objects.none()
    return LabelingQueue.objects.order_by("name")


def queue_dashboard(*, user: AbstractBaseUser, queue_id: int) -> QueueDashboard:
    """A queue's progress, throughput, annotators and agreement; leads (and admins) only."""
    if not user_has_role(user, Role.LEAD):
        raise Forbidden("the queue dashboards are for leads", field="queue")
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    now = timezone.now()
    pairs = _pair_counts(queue=queue, now=now)
    judgments = Judgment.objects.filter(pair__queue=queue)
    hours, last_hour, per_hour = _hours(judgments=judgments, now=now)
    choices = dict.fromkeys(CHOICES, 0)
    for row in judgments.values("choice").annotate(n=Count("id")):
        choices[row["choice"]] = row["n"]
    sided = choices["left"] + choices["right"]
    counterfactual = judgments.filter(pair__kind=Pair.Kind.COUNTERFACTUAL)
    return QueueDashboard(
        queue=queue,
        visible_to=Audience(
            groups=list(queue.allowed_groups.order_by("name").values_list("name", flat=True)),
            users=list(queue.allowed_users.order_by("username").values_list("username", flat=True)),
        ),
        pairs=pairs,
        hours=hours,
        last_hour=last_hour,
        per_hour_24h=per_hour,
        choices=choices,
        left_share=choices["left"] / sided if sided else None,
        agreement=_agreement(counterfactual.aggregate(**_AGREEMENT)),
        annotators=_annotators(judgments=judgments, counterfactual=counterfactual, now=now),
        counterfactual_pairs=Pair.objects.filter(
            queue=queue, kind=Pair.Kind.COUNTERFACTUAL
        ).count(),
    )


def _pair_counts(*, queue: LabelingQueue, now: datetime) -> PairCounts:
    complete = Q(judgments_count__gte=F("judgments_needed"))
    untouched = Q(judgments_count=0, reserved_count=0)
    counts = Pair.objects.filter(queue=queue).aggregate(
        total=Count("id"),
        complete=Count("id", filter=complete),
        open=Count("id", filter=untouched & ~complete),
    )
    held = Assignment.objects.filter(
        pair__queue=queue, status=Assignment.Status.ACTIVE, expires_at__gt=now
    ).count()
    return PairCounts(
        total=counts["total"],
        open=counts["open"],
        in_progress=counts["total"] - counts["open"] - counts["complete"],
        complete=counts["complete"],
        held_now=held,
    )


def _hours(*, judgments: QuerySet[Judgment], now: datetime) -> tuple[list[HourCount], int, float]:
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=HOURS_SHOWN - 1)
    by_hour = {
        row["hour"]: row["n"]
        for row in judgments.filter(created_at__gte=start)
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(n=Count("id"))
    }
    hours = [
        HourCount(hour=hour, judgments=by_hour.get(hour, 0))
        for hour in (start + timedelta(hours=i) for i in range(HOURS_SHOWN))
    ]
    last_hour = judgments.filter(created_at__gte=now - timedelta(hours=1)).count()
    day = judgments.filter(created_at__gte=now - timedelta(hours=24)).count()
    return hours, last_hour, day / 24


_AGREEMENT = {
    "agree": Count("id", filter=Q(choice__in=["left", "right"], winner=F("pair__intended_winner"))),
    "decided": Count("id", filter=Q(choice__in=["left", "right"])),
    "undecided": Count("id", filter=Q(choice__in=["tie", "both_wrong"])),
}


def _agreement(row: dict) -> Agreement:
    return Agreement(
        agree=row["agree"] or 0, decided=row["decided"] or 0, undecided=row["undecided"] or 0
    )


def _annotators(
    *, judgments: QuerySet[Judgment], counterfactual: QuerySet[Judgment], now: datetime
) -> list[AnnotatorRow]:
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        judgments.values("annotator_id", "annotator__username")
        .annotate(
            judged=Count("id", filter=~Q(choice="skip")),
            skips=Count("id", filter=Q(choice="skip")),
            today=Count("id", filter=Q(created_at__gte=midnight)),
            last_at=Max("created_at"),
        )
        .order_by("-judged", "annotator__username")
    )
    agreement = {
        row["annotator_id"]: _agreement(row)
        for row in counterfactual.values("annotator_id").annotate(**_AGREEMENT)
    }
    empty = Agreement(agree=0, decided=0, undecided=0)
    return [
        AnnotatorRow(
            username=row["annotator__username"],
            judgments=row["judged"],
            skips=row["skips"],
            today=row["today"],
            last_at=row["last_at"],
            agreement=agreement.get(row["annotator_id"], empty),
        )
        for row in rows
    ]


# --- quality control (issue 16): the lead's panels; the figures are annotation's ---------------


@dataclass(frozen=True)
class QualityPanel:
    quality: QueueQuality
    ambiguous: list[Pair]  # the newest PAIRS_SHOWN, with their vote counts
    disputed: list[Pair]


def queue_quality_panel(*, user: AbstractBaseUser, queue_id: int) -> QualityPanel:
    """A queue's quality summary and the first pairs of each list; leads (and admins) only."""
    if not user_has_role(user, Role.LEAD):
        raise Forbidden("the queue dashboards are for leads", field="queue")
    quality = queue_quality(queue_id=queue_id)
    return QualityPanel(
        quality=quality,
        ambiguous=list(pairs_in_state(queue_id=queue_id, state="ambiguous")[:PAIRS_SHOWN]),
        disputed=list(pairs_in_state(queue_id=queue_id, state="disputed")[:PAIRS_SHOWN]),
    )


def lead_pair_detail(*, user: AbstractBaseUser, pair_id: int) -> PairDetail:
    """A pair and every vote on it, for a lead's drill-down page."""
    if not user_has_role(user, Role.LEAD):
        raise Forbidden("the queue dashboards are for leads", field="pair")
    return pair_detail(pair_id=pair_id)
