"""Recovery of the generation stage's work after lost broker messages: campaigns, prompt sets.

A campaign's items and a large prompt set's build keep their state in PostgreSQL and are
started by broker messages. When Redis loses its messages (a restart without persistence, an
eviction, a failover), or a launch could not reach it, the campaign stays running with pending
items and the set stays building, and nothing would ever start them again. The
`generation.recover` beat task (tasks.py) calls these every RECOVERY_SWEEP_SECONDS.

- A campaign is stranded when it has pending items nobody holds, no live lease, and nothing
  moved (no item finished, nothing published) for RECOVERY_STALE_SECONDS, and the queue of
  those items holds no message: a campaign waiting behind another one's batches (hours on a
  busy GPU queue) is never published twice over, which for a large campaign would be
  thousands of extra messages every period. Its pending items are published again; a batch
  whose items a worker took meanwhile does nothing (leases.py).
- A prompt set is stranded when it is building, no build holds its row (a build is one
  transaction that locks the row), and its build was last published RECOVERY_STALE_SECONDS ago.

Publishing is marked on the row first with a compare-and-set (`dispatched_at`,
`build_queued_at`), so two sweeps never both publish the same work.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from config.celery import BrokerUnreachable, Queue, queue_waiting, stale_cutoff
from generation_workers.models import Campaign, Candidate, PromptSet
from generation_workers.services.dispatch import candidate_batches_publish

log = logging.getLogger(__name__)

PENDING = Candidate.Status.PENDING


def _cutoff(now: datetime | None, stale_after: float | None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return now, stale_cutoff(now=now, stale_after=stale_after)


def campaigns_recover(*, now: datetime | None = None, stale_after: float | None = None) -> int:
    """Publish again the pending items of stranded running campaigns (see the module
    docstring); `stale_after` defaults to RECOVERY_STALE_SECONDS. Returns the items published.
    """
    now, cutoff = _cutoff(now, stale_after)
    mine = Candidate.objects.filter(campaign=OuterRef("pk"))
    last_finished = Subquery(
        mine.order_by().values("campaign").annotate(last=Max("finished_at")).values("last")
    )
    stranded = (
        Campaign.objects.filter(status=Campaign.Status.RUNNING)
        .filter(Exists(mine.filter(status=PENDING, leased_until__isnull=True)))
        .exclude(Exists(mine.filter(status=PENDING, leased_until__gte=now)))
        .annotate(
            moved=Greatest(
                Coalesce("dispatched_at", "started_at"), Coalesce(last_finished, "started_at")
            )
        )
        .filter(moved__lt=cutoff)
        .values_list("pk", "dispatched_at")
    )
    published = 0
    waiting: dict[str, int] = {}
    for campaign_id, dispatched in stranded:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for pk, queue in Candidate.objects.filter(
            campaign_id=campaign_id, status=PENDING, leased_until__isnull=True
        ).values_list("pk", "config__queue"):
            by_queue[queue or Queue.GPU].append(pk)
        try:
            for queue in by_queue:
                if queue not in waiting:
                    waiting[queue] = queue_waiting(queue)
        except BrokerUnreachable as exc:
            log.warning("generation.campaigns.recover_skipped error=%s", exc)
            return published
        ids = [pk for queue, pks in by_queue.items() if not waiting[queue] for pk in pks]
        if not ids:
            continue  # its batches may wait behind others: look again next time
        with transaction.atomic():
            taken = Campaign.objects.filter(
                pk=campaign_id, status=Campaign.Status.RUNNING, dispatched_at=dispatched
            ).update(dispatched_at=now)
        if taken:
            count = candidate_batches_publish(candidate_ids=ids)
            published += count
            log.warning("generation.campaign.recovered campaign=%s items=%d", campaign_id, count)
    return published


def prompt_sets_recover(
    *, now: datetime | None = None, stale_after: float | None = None
) -> list[int]:
    """Publish again the builds of prompt sets still building with no build running, last
    published `stale_after` seconds ago (default RECOVERY_STALE_SECONDS). Returns their ids."""
    from generation_workers.tasks import prompt_set_build_task

    now, cutoff = _cutoff(now, stale_after)
    with transaction.atomic():
        # A running build holds its set's row for its whole transaction: skipped here.
        stranded = list(
            PromptSet.objects.select_for_update(skip_locked=True)
            .filter(status=PromptSet.Status.BUILDING)
            .annotate(queued=Coalesce("build_queued_at", "created_at"))
            .filter(queued__lt=cutoff)
            .values_list("pk", flat=True)
        )
        PromptSet.objects.filter(pk__in=stranded).update(build_queued_at=now)
        for pk in stranded:
            prompt_set_build_task.delay_on_commit(pk)
    if stranded:
        log.warning("prompts.set.recovered sets=%s", stranded)
    return stranded
