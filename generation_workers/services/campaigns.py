"""Writes of campaigns: create, launch, cancel, retry failures, requeue.

Launching plans every generation key as a pending candidate row (campaign_plans.py) and, after
the commit, publishes the rows as batches of `config.batch_size` on the config's queue
(dispatch.py). Workers claim and finish the rows (batches.py, leases.py); the campaign
completes when none is pending. Cancel drops queued items and lets batches being rendered
finish; retry queues failed items again; requeue publishes pending items again. Each records
when it published (`dispatched_at`): the recovery sweep (recovery.py) publishes a campaign's
pending items again when nothing moved for RECOVERY_STALE_SECONDS after that.
"""

import logging
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from generation_workers.models import Campaign, Candidate
from generation_workers.services.campaign_plans import (
    campaign_rows_adopt,
    campaign_rows_insert,
    campaign_rows_plan,
    campaign_validate,
    configs_clean,
    prompt_set_ready,
)
from generation_workers.services.dispatch import candidate_batches_publish
from generation_workers.services.prompts import prompt_set_lock

log = logging.getLogger(__name__)

PENDING = Candidate.Status.PENDING


def _campaign_locked(campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}", field="campaign")
    return campaign


def campaign_create(
    *,
    name: str,
    prompt_set_id: int,
    config_ids: Sequence[int],
    seeds_per_prompt: int = 1,
    base_seed: int = 0,
    include_perturbations: bool = True,
    prompt_filter: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    """A draft campaign (checked by campaign_validate); launch it with campaign_launch."""
    values = campaign_validate(
        name=name,
        prompt_set_id=prompt_set_id,
        config_ids=config_ids,
        seeds_per_prompt=seeds_per_prompt,
        base_seed=base_seed,
        include_perturbations=include_perturbations,
        prompt_filter=prompt_filter,
    )
    configs = values.pop("configs")
    planned = values.pop("planned")
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(**values, created_by=created_by)
            campaign.configs.set(configs)
    except IntegrityError as exc:
        raise ValidationFailed(f"a campaign named {name!r} exists", field="name") from exc
    log.info("generation.campaign.created campaign=%s planned=%d", campaign.pk, planned)
    return campaign


def campaign_ensure_launched(
    *,
    name: str,
    prompt_set_id: int,
    config_ids: Sequence[int],
    seeds_per_prompt: int = 1,
    base_seed: int = 0,
    include_perturbations: bool = True,
    prompt_filter: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    """The named campaign, created and launched on the first call (a re-run demo seeding
    finds it and leaves it as it is)."""
    existing = Campaign.objects.filter(name=name).first()
    if existing is not None:
        if existing.status == Campaign.Status.DRAFT:
            return campaign_launch(campaign_id=existing.pk)
        return existing
    campaign = campaign_create(
        name=name,
        prompt_set_id=prompt_set_id,
        config_ids=config_ids,
        seeds_per_prompt=seeds_per_prompt,
        base_seed=base_seed,
        include_perturbations=include_perturbations,
        prompt_filter=prompt_filter,
        created_by=created_by,
    )
    return campaign_launch(campaign_id=campaign.pk)


def campaign_launch(*, campaign_id: int) -> Campaign:
    """Plan every key as a pending candidate, lock the prompt set, publish the batches."""
    with transaction.atomic():
        campaign = _campaign_locked(campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise Conflict(
                f"campaign {campaign.name!r} is {campaign.status}; only a draft can be launched",
                field="status",
            )
        prompt_set_ready(prompt_set_id=campaign.prompt_set_id)
        configs = configs_clean(config_ids=[c.pk for c in campaign.configs.all()])
        prompt_set_lock(prompt_set_id=campaign.prompt_set_id)
        planned = campaign_rows_insert(rows=campaign_rows_plan(campaign=campaign, configs=configs))
        adopted = campaign_rows_adopt(campaign=campaign, configs=configs)
        total = Candidate.objects.filter(campaign=campaign).count()
        now = timezone.now()
        campaign.status = Campaign.Status.RUNNING if total else Campaign.Status.COMPLETED
        campaign.started_at = now
        campaign.dispatched_at = now
        campaign.finished_at = None if total else now
        campaign.total_items = total
        campaign.reused_items = planned - total
        campaign.save(
            update_fields=[
                "status", "started_at", "dispatched_at", "finished_at", "total_items",
                "reused_items",
            ]
        )  # fmt: skip
        transaction.on_commit(lambda: candidate_batches_publish(campaign_id=campaign.pk))
    log.info(
        "generation.campaign.launched campaign=%s planned=%d total=%d reused=%d adopted=%d",
        campaign.pk,
        planned,
        total,
        planned - total,
        adopted,
    )
    return campaign


def campaign_cancel(*, campaign_id: int) -> int:
    """Stop a running campaign: queued items are cancelled; batches being rendered finish.

    Returns the number of items cancelled.
    """
    with transaction.atomic():
        campaign = _campaign_locked(campaign_id)
        if campaign.status != Campaign.Status.RUNNING:
            raise Conflict(
                f"campaign {campaign.name!r} is {campaign.status}; only a running campaign can "
                "be cancelled",
                field="status",
            )
        now = timezone.now()
        cancelled = (
            Candidate.objects.filter(campaign=campaign, status=PENDING)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
            .update(
                status=Candidate.Status.CANCELLED,
                lease_token="",
                leased_until=None,
                finished_at=now,
            )
        )
        campaign.status = Campaign.Status.CANCELLED
        campaign.finished_at = now
        campaign.save(update_fields=["status", "finished_at"])
    log.info("generation.campaign.cancelled campaign=%s items=%d", campaign_id, cancelled)
    return cancelled


def campaign_retry_failed(*, campaign_id: int) -> int:
    """Queue the campaign's failed items again (the campaign runs again); returns how many."""
    with transaction.atomic():
        campaign = _campaign_locked(campaign_id)
        if campaign.status in (Campaign.Status.DRAFT, Campaign.Status.CANCELLED):
            raise Conflict(
                f"campaign {campaign.name!r} is {campaign.status}; its failures cannot be retried",
                field="status",
            )
        retried = Candidate.objects.filter(
            campaign=campaign, status=Candidate.Status.FAILED
        ).update(status=PENDING, error="", attempts=0, finished_at=None)
        if retried:
            campaign.status = Campaign.Status.RUNNING
            campaign.finished_at = None
            campaign.dispatched_at = timezone.now()
            campaign.save(update_fields=["status", "finished_at", "dispatched_at"])
            transaction.on_commit(lambda: candidate_batches_publish(campaign_id=campaign.pk))
    log.info("generation.campaign.retried campaign=%s items=%d", campaign_id, retried)
    return retried


def campaign_requeue_pending(*, campaign_id: int) -> int:
    """Publish the running campaign's unleased pending items again (after a broker was lost;
    the recovery sweep does it by itself, see recovery.py).

    Safe at any time: a batch whose items are done or leased does nothing.
    """
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}", field="campaign")
    if campaign.status != Campaign.Status.RUNNING:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}; only a running campaign has "
            "items to requeue",
            field="status",
        )
    Campaign.objects.filter(pk=campaign_id).update(dispatched_at=timezone.now())
    return candidate_batches_publish(campaign_id=campaign_id)
