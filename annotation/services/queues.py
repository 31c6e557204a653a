"""Labeling queues: creation, changes, pause/resume, and who may label one.

The admin and the API both save queues through these services. A queue is open to the users
and groups it names; one that names neither would be invisible to every annotator, so it is
refused (field `allowed_groups`). A queue that names neither (the groups left out, not given
empty) is open to every annotator (the `annotator` group); a lead stages a queue before
opening it by pausing it.
"""

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction

from annotation.models import LabelingQueue
from config.errors import NotFound, ValidationFailed
from config.roles import Role, role_groups_ensure

log = logging.getLogger(__name__)

MAX_OVERLAP = 50
MAX_PREFETCH = 20
MIN_LEASE_SECONDS = 10
MAX_LEASE_SECONDS = 24 * 3600
EVERY_ANNOTATOR = (Role.ANNOTATOR.value,)


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


def _name_clean(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a queue name of 1 to 200 characters is required", field="name")
    return name


def labeling_queue_audience_check(
    *, allowed_users: Iterable[AbstractBaseUser], allowed_group_names: Iterable[str]
) -> list[Group]:
    """The groups named (the role groups are made on first use); refuses unknown groups and a
    queue that names neither a group nor a user, which no annotator would ever see."""
    group_names = sorted(set(allowed_group_names))
    if not group_names and not list(allowed_users):
        raise ValidationFailed(
            "nobody could label this queue: choose allowed groups (e.g. annotator) or allowed "
            "users",
            field="allowed_groups",
        )
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
    return groups


def labeling_queue_create(
    *,
    name: str,
    instructions: str = "",
    overlap: int = 3,
    lease_seconds: int = 600,
    prefetch: int = 3,
    allowed_users: Iterable[AbstractBaseUser] = (),
    allowed_group_names: Iterable[str] | None = None,
    created_by: AbstractBaseUser | None = None,
    exist_ok: bool = False,
) -> LabelingQueue:
    """Create a queue (active) and who may label it: users, and groups by name. With neither
    named (`allowed_group_names` left out), every annotator may.

    With exist_ok an existing queue of that name is returned unchanged (the demo seeds twice).
    """
    name = _name_clean(name)
    labeling_queue_settings_check(overlap=overlap, lease_seconds=lease_seconds, prefetch=prefetch)
    allowed_users = list(allowed_users)
    if allowed_group_names is None:
        allowed_group_names = () if allowed_users else EVERY_ANNOTATOR
    groups = labeling_queue_audience_check(
        allowed_users=allowed_users, allowed_group_names=allowed_group_names
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
        queue.allowed_users.set(allowed_users)
        queue.allowed_groups.set(groups)
    log.info("labeling.queue.created queue=%s name=%s overlap=%d", queue.pk, name, overlap)
    return queue


def labeling_queue_update(
    *,
    queue_id: int,
    name: str,
    instructions: str,
    overlap: int,
    lease_seconds: int,
    prefetch: int,
    allowed_users: Iterable[AbstractBaseUser],
    allowed_group_names: Iterable[str],
) -> LabelingQueue:
    """Change a queue's settings and who may label it (its status: pause and resume)."""
    name = _name_clean(name)
    labeling_queue_settings_check(overlap=overlap, lease_seconds=lease_seconds, prefetch=prefetch)
    allowed_users = list(allowed_users)
    groups = labeling_queue_audience_check(
        allowed_users=allowed_users, allowed_group_names=allowed_group_names
    )
    with transaction.atomic():
        queue = LabelingQueue.objects.select_for_update().filter(pk=queue_id).first()
        if queue is None:
            raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
        queue.name = name
        queue.instructions = instructions
        queue.overlap = overlap
        queue.lease_seconds = lease_seconds
        queue.prefetch = prefetch
        try:
            with transaction.atomic():
                queue.save(
                    update_fields=["name", "instructions", "overlap", "lease_seconds", "prefetch"]
                )
        except IntegrityError:  # the name is another queue's (a unique constraint)
            raise ValidationFailed(f"a queue named {name!r} exists already", field="name") from None
        queue.allowed_users.set(allowed_users)
        queue.allowed_groups.set(groups)
    log.info("labeling.queue.changed queue=%s name=%s overlap=%d", queue.pk, name, overlap)
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
