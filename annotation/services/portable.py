"""The hot path without the PostgreSQL statements: the same rules through the ORM, each call
in one transaction (the SQLite demo, where writers are serialised; LABELING_ENGINE = "orm").
"""

import random
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.models import Assignment, LabelingQueue, Pair
from annotation.selectors import labeling_queue_for_labeling
from annotation.services.images import ImageSource
from annotation.services.results import HeartbeatResult, LeasedItem, NextResult


def items_for(*, user: AbstractBaseUser, pair_ids: list[int]) -> list[LeasedItem]:
    leases = (
        Assignment.objects.filter(
            annotator=user, pair_id__in=pair_ids, status=Assignment.Status.ACTIVE
        )
        .select_related("pair__prompt", "pair__candidate_a", "pair__candidate_b", "left_candidate")
        .order_by("leased_at", "pair_id")
    )
    return items_orm(list(leases))


def items_orm(leases: list[Assignment]) -> list[LeasedItem]:
    items = []
    for lease in leases:
        pair = lease.pair
        left = lease.left_candidate
        right = pair.candidate_b if left.pk == pair.candidate_a_id else pair.candidate_a
        items.append(
            LeasedItem(
                pair_id=pair.pk,
                expires_at=lease.expires_at,
                prompt_text=pair.prompt.text,
                prompt_structure=pair.prompt.structure or {},
                left=ImageSource(left.content_sha256, left.storage_key),
                right=ImageSource(right.content_sha256, right.storage_key),
            )
        )
    return items


def _open_q() -> Q:
    return Q(judgments_count__lt=F("judgments_needed") - F("reserved_count"))


def next_orm(
    *, user: AbstractBaseUser, queue_id: int, count: int | None, known: list[int]
) -> NextResult:
    queue = labeling_queue_for_labeling(queue_id=queue_id, user=user)
    count = count or queue.prefetch
    now = timezone.now()
    with transaction.atomic():
        held = list(
            Assignment.objects.filter(
                annotator=user,
                status=Assignment.Status.ACTIVE,
                expires_at__gt=now,
                pair__queue_id=queue.pk,
            ).order_by("leased_at", "pair_id")[:count]
        )
        want = count - len(held)
        chosen: list[Pair] = []
        if want > 0:
            mine = Assignment.objects.filter(annotator=user).exclude(
                status=Assignment.Status.EXPIRED
            )
            started = list(
                Pair.objects.filter(_open_q(), queue_id=queue.pk, fresh=False)
                .exclude(pk__in=mine.values("pair_id"))
                .order_by("-priority", "-judgments_count", "id")
                .select_for_update(skip_locked=True, of=("self",))[:want]
            )
            fresh = list(
                Pair.objects.filter(queue_id=queue.pk, fresh=True)
                .order_by("-priority", "id")
                .select_for_update(skip_locked=True, of=("self",))[:want]
            )
            chosen = sorted(started + fresh, key=lambda p: (-p.priority, -p.judgments_count, p.pk))[
                :want
            ]
        expires = now + timedelta(seconds=queue.lease_seconds)
        for pair in chosen:
            left = random.choice([pair.candidate_a_id, pair.candidate_b_id])  # noqa: S311
            lease, created = Assignment.objects.get_or_create(
                pair=pair,
                annotator=user,
                defaults={"left_candidate_id": left, "leased_at": now, "expires_at": expires},
            )
            if not created:
                if lease.status != Assignment.Status.EXPIRED:
                    continue
                Assignment.objects.filter(pk=lease.pk).update(
                    status=Assignment.Status.ACTIVE, leased_at=now, expires_at=expires
                )
            Pair.objects.filter(pk=pair.pk).update(
                reserved_count=F("reserved_count") + 1, fresh=False
            )
            held.append(Assignment(pk=lease.pk, pair=pair, annotator=user))
        pair_ids = [lease.pair_id for lease in held]
    order = {pid: i for i, pid in enumerate(pair_ids)}
    leases = list(
        Assignment.objects.filter(
            annotator=user, pair_id__in=pair_ids, status=Assignment.Status.ACTIVE
        ).select_related("pair__prompt", "pair__candidate_a", "pair__candidate_b", "left_candidate")
    )
    leases.sort(key=lambda a: order[a.pair_id])
    known_set = set(known)
    return NextResult(
        items=items_orm([a for a in leases if a.pair_id not in known_set]),
        known_held=[a.pair_id for a in leases if a.pair_id in known_set],
    )


def reclaim_orm(*, limit: int) -> int:
    now = timezone.now()
    expired = 0
    with transaction.atomic():
        due = list(
            Assignment.objects.filter(status=Assignment.Status.ACTIVE, expires_at__lt=now)
            .order_by("expires_at")
            .values_list("pair_id", flat=True)[:limit]
        )
        for pair in Pair.objects.filter(pk__in=set(due)).select_for_update(skip_locked=True):
            n = Assignment.objects.filter(
                pair=pair, status=Assignment.Status.ACTIVE, expires_at__lt=now
            ).update(status=Assignment.Status.EXPIRED)
            if n:
                Pair.objects.filter(pk=pair.pk).update(reserved_count=F("reserved_count") - n)
                expired += n
    return expired


def heartbeat_orm(*, user: AbstractBaseUser, queue_id: int, pair_ids: list[int]) -> HeartbeatResult:
    queue: LabelingQueue = labeling_queue_for_labeling(queue_id=queue_id, user=user)
    now = timezone.now()
    expires = now + timedelta(seconds=queue.lease_seconds)
    with transaction.atomic():
        mine = Assignment.objects.filter(
            annotator=user,
            pair_id__in=pair_ids,
            pair__queue_id=queue.pk,
            status=Assignment.Status.ACTIVE,
        )
        held = set(mine.values_list("pair_id", flat=True))
        Assignment.objects.filter(
            pk__in=list(mine.select_for_update(skip_locked=True).values_list("pk", flat=True))
        ).update(expires_at=expires)
    return HeartbeatResult(
        renewed={pid: expires for pid in held}, lost=[p for p in pair_ids if p not in held]
    )
