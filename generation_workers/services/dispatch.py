"""The queue side of campaigns: publishing pending items as batches, and finishing campaigns.

Publishing is safe to repeat: a batch whose items are done or leased does nothing, so launch,
retry, requeue, the lease sweep and the recovery sweep (recovery.py) all publish through
`candidate_batches_publish`. A broker that cannot be reached stops the publishing without an
error: the items stay pending and the recovery sweep publishes them when it is back.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.celery import BrokerUnreachable, Queue
from generation_workers.models import Campaign, Candidate, GeneratorConfig

log = logging.getLogger(__name__)

PENDING = Candidate.Status.PENDING


def campaign_finish_if_done(*, campaign_id: int) -> bool:
    """Mark a running campaign completed (failed when nothing succeeded) once none is pending."""
    if Candidate.objects.filter(campaign_id=campaign_id, status=PENDING).exists():
        return False  # the common case, in one indexed query; the UPDATE below re-checks
    pending = Candidate.objects.filter(campaign_id=OuterRef("pk"), status=PENDING)
    done = Candidate.objects.filter(campaign_id=OuterRef("pk"), status=Candidate.Status.DONE)
    now = timezone.now()
    open_campaign = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).exclude(
        Exists(pending)
    )
    finished = open_campaign.filter(Exists(done)).update(
        status=Campaign.Status.COMPLETED, finished_at=now
    ) or open_campaign.update(status=Campaign.Status.FAILED, finished_at=now)
    if finished:
        log.info("generation.campaign.finished campaign=%s", campaign_id)
    return bool(finished)


def candidate_batches_publish(
    *, campaign_id: int | None = None, candidate_ids: Sequence[int] | None = None
) -> int:
    """Publish the unleased pending items (of a campaign, or these ids) as batches, one config
    per batch, `batch_size` items each, on the config's queue. Returns the items published."""
    from generation_workers.tasks import render_batch  # tasks import these services

    items = Candidate.objects.filter(
        status=PENDING, leased_until__isnull=True, campaign__status=Campaign.Status.RUNNING
    )
    if campaign_id is not None:
        items = items.filter(campaign_id=campaign_id)
    if candidate_ids is not None:
        if not candidate_ids:
            return 0
        items = items.filter(pk__in=list(candidate_ids))
    by_config: dict[int, list[int]] = defaultdict(list)
    for pk, config_id in items.order_by("id").values_list("pk", "config_id"):
        by_config[config_id].append(pk)
    configs = GeneratorConfig.objects.in_bulk(list(by_config))
    published = batches = 0
    try:
        with render_batch.app.producer_or_acquire() as producer:
            for config_id, ids in by_config.items():
                config = configs[config_id]
                for start in range(0, len(ids), config.batch_size):
                    chunk = ids[start : start + config.batch_size]
                    render_batch.apply_async(
                        args=[config_id, chunk], queue=config.queue or Queue.GPU, producer=producer
                    )
                    published += len(chunk)
                    batches += 1
    except BrokerUnreachable as exc:
        log.warning(
            "generation.batches.publish_failed campaign=%s published=%d of=%d error=%s",
            campaign_id,
            published,
            sum(len(ids) for ids in by_config.values()),
            exc,
        )
        return published
    log.info(
        "generation.batches.published campaign=%s items=%d batches=%d",
        campaign_id,
        published,
        batches,
    )
    return published
