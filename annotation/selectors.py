"""Reads of the labeling data."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from annotation.models import LabelingQueue


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
