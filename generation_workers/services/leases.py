"""Leases: a worker renders an item only while it holds it, and dead workers' items return.

Claiming locks the free rows with SKIP LOCKED (pending, campaign running, no live lease) and
gives them a fresh token and expiry in the same transaction, so two deliveries of one batch
never both take an item. A thread renews the lease while the batch renders. When a worker dies
(kill -9, out of memory, hard time limit) its leases run out; `candidate_leases_sweep`, run by
every worker's timer (tasks.LeaseSweeper), queues those items again, up to MAX_ATTEMPTS
claims, after which they fail with a message instead of crash-looping a worker.
"""

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from generation_workers import metrics
from generation_workers.models import Campaign, Candidate
from generation_workers.services.dispatch import (
    campaign_finish_if_done,
    candidate_batches_publish,
)

log = logging.getLogger(__name__)

PENDING = Candidate.Status.PENDING
MAX_ATTEMPTS = 3  # claims of one item whose worker died before it gives up
SWEEP_CHUNK = 5000
ERROR_MAX_CHARS = 2000  # of a failed item's message


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0


def lease_seconds() -> int:
    return int(settings.GENERATION_LEASE_SECONDS)


@dataclass(frozen=True)
class ClaimedItem:
    """An item this worker now holds, with what rendering it needs."""

    candidate_id: int
    campaign_id: int
    seed: int
    params_hash: str
    text: str
    structure: dict[str, Any]


def candidates_claim(*, candidate_ids: Sequence[int], token: str) -> list[ClaimedItem]:
    """Lease the items that are free to render (pending, running campaign, no live lease).

    The free rows are locked with SKIP LOCKED and leased in one transaction, so two deliveries
    of the same batch never both take an item; they come back with their prompts. Finishing
    an item needs the token (batches._record): an item whose lease ran out and was claimed
    again is no longer this worker's to finish.
    """
    now = timezone.now()
    with transaction.atomic():
        free = [
            ClaimedItem(*row)
            for row in Candidate.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=candidate_ids, status=PENDING, campaign__status=Campaign.Status.RUNNING)
            .filter(
                Q(leased_until__isnull=True) | Q(leased_until__lt=now, attempts__lt=MAX_ATTEMPTS)
            )
            .order_by("pk")
            .values_list(
                "pk", "campaign_id", "seed", "params_hash", "prompt__text", "prompt__structure"
            )
        ]
        if free:
            Candidate.objects.filter(pk__in=[item.candidate_id for item in free]).update(
                lease_token=token,
                leased_until=now + timedelta(seconds=lease_seconds()),
                attempts=F("attempts") + 1,
            )
    return free


def candidate_leases_release(*, token: str) -> int:
    """Give the items back (no render happened), e.g. before a retry."""
    return Candidate.objects.filter(lease_token=token, status=PENDING).update(
        lease_token="", leased_until=None
    )


class LeaseHeartbeat:
    """Renews a batch's lease every third of its length from a thread, from start() until
    stop(): while the batch renders and, with write-behind, until its results are recorded."""

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.seconds = lease_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{token[:8]}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.seconds / 3):
                Candidate.objects.filter(lease_token=self.token, status=PENDING).update(
                    leased_until=timezone.now() + timedelta(seconds=self.seconds)
                )
        except DatabaseError:
            log.warning("generation.lease.renew_failed token=%s", self.token, exc_info=True)
        finally:
            connection.close()

    def start(self) -> "LeaseHeartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


def candidate_leases_sweep(*, now: datetime | None = None) -> SweepReport:
    """Queue again the items whose worker died (lease ran out); give up after MAX_ATTEMPTS.

    Items of campaigns no longer running are cancelled instead.
    """
    now = now or timezone.now()
    report = SweepReport()
    with transaction.atomic():
        rows = list(
            Candidate.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=PENDING, leased_until__lt=now)
            .values_list("pk", "attempts", "campaign_id", "campaign__status", "config__name")[
                :SWEEP_CHUNK
            ]
        )
        if not rows:
            return report
        running = Campaign.Status.RUNNING
        requeue: list[int] = []
        give_up: dict[int, str] = {}  # item -> its config's name, for the failed-images counter
        stop: list[int] = []
        for pk, attempts, _, status, config in rows:
            if status != running:
                stop.append(pk)
            elif attempts < MAX_ATTEMPTS:
                requeue.append(pk)
            else:
                give_up[pk] = config
        cleared = {"lease_token": "", "leased_until": None}
        report.requeued = Candidate.objects.filter(pk__in=requeue).update(**cleared)
        report.failed = Candidate.objects.filter(pk__in=list(give_up)).update(
            **cleared,
            finished_at=now,
            status=Candidate.Status.FAILED,
            error=f"gave up after {MAX_ATTEMPTS} attempts: the worker rendering it stopped each "
            "time (killed, out of memory or past its time limit)",
        )
        report.cancelled = Candidate.objects.filter(pk__in=stop).update(
            **cleared, status=Candidate.Status.CANCELLED, finished_at=now
        )
        transaction.on_commit(lambda: candidate_batches_publish(candidate_ids=requeue))
    metrics.images_failed(configs=give_up.values())
    for campaign_id in sorted({campaign_id for _, _, campaign_id, _, _ in rows}):
        campaign_finish_if_done(campaign_id=campaign_id)
    log.info(
        "generation.leases.swept requeued=%d failed=%d cancelled=%d",
        report.requeued,
        report.failed,
        report.cancelled,
    )
    return report
