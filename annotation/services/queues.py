"""Labeling queues: creation, pause/resume, and the check that a user may label one."""

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from annotation.models import LabelingQueue
from config.errors import NotFound, ValidationFailed
from config.roles import Role, role_groups_ensure

log = logging.getLogger(__name__)

MAX_OVERLAP = 50
MAX_PREFETCH = 20
MIN_LEASE_SECONDS = 10
MAX_LEASE_SECONDS = 24 * 3600


def labeling_queue_settings_check(*, overlap: int, lease_seconds: int, prefetch: int) -> None:
    if not 1 <= overlap <= MAX_OVERLAP:
        raise ValidationFailed(f"overlap must be between 1 and {MAX_OVERLAP}", field="overlap")
    if not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS:
        raise ValidationFailed(
            f"lease_seconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}",
            field="lease_seconds",
        )
    if not 1 <= prefetch <= MAX_PREFETCH:
        raise ValidationFailed(f"prefetch must be between 1 and {MAX_PREFETCH}", field="prefetch")


def labeling_queue_create(
    *,
    name: str,
    instructions: str = "",
    overlap: int = 3,
    lease_seconds: int = 600,
    prefetch: int = 3,
    allowed_users: Iterable[AbstractBaseUser] = (),
    allowed_group_names: Iterable[str] = (),
    created_by: AbstractBaseUser | None = None,
    exist_ok: bool = False,
) -> LabelingQueue:
    """Create a queue (active) and who may label it: users, and groups by name.

    With exist_ok an existing queue of that name is returned unchanged (the demo seeds twice).
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a queue name of 1 to 200 characters is required", field="name")
    labeling_queue_settings_check(overlap=overlap, lease_seconds=lease_seconds, prefetch=prefetch)
    group_names = sorted(set(allowed_group_names))
    groups = list(Group.objects.filter(name__in=group_names))
    missing = set(group_names) - {g.name for g in groups}
    if missing & {role.value for role in Role}:
        role_groups_ensure()  # the role groups are the project's own; made on first use
        groups = list(Group.objects.filter(name__in=group_names))
        missing = set(group_names) - {g.name for g in groups}
    if missing:
        raise ValidationFailed(
            f"unknown group(s): {', '.join(sorted(missing))}", field="allowed_groups"
        )
    with transaction.atomic():
        queue, created = LabelingQueue.objects.get_or_create(
            name=name,
            defaults={
                "instructions": instructions,
                "overlap": overlap,
                "lease_seconds": lease_seconds,
                "prefetch": prefetch,
                "created_by": created_by,
            },
        )
        if not created:
            if exist_ok:
                return queue
            raise ValidationFailed(f"a queue named {name!r} exists already", field="name")
        queue.allowed_users.set(list(allowed_users))
        queue.allowed_groups.set(groups)
    log.info("labeling.queue.created queue=%s name=%s overlap=%d", queue.pk, name, overlap)
    return queue


def labeling_queue_pause(*, queue_id: int) -> LabelingQueue:
    """Stop serving a queue: next, submit and heartbeat answer 409 until it is resumed."""
    return _status_set(queue_id=queue_id, status=LabelingQueue.Status.PAUSED)


def labeling_queue_resume(*, queue_id: int) -> LabelingQueue:
    return _status_set(queue_id=queue_id, status=LabelingQueue.Status.ACTIVE)


def _status_set(*, queue_id: int, status: str) -> LabelingQueue:
    updated = LabelingQueue.objects.filter(pk=queue_id).update(status=status)
    if not updated:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    log.info("labeling.queue.%s queue=%s", status, queue_id)
    return LabelingQueue.objects.get(pk=queue_id)
