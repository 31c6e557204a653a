"""Reads of campaigns: the prompts a campaign covers, its progress, its candidates.

A campaign's prompts are the originals of its prompt set that pass its filter, plus (with
include_perturbations) their perturbed copies, which are rendered with the same configs and
seeds so that each original and perturbed image form a counterfactual pair.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from config.errors import NotFound, ValidationFailed
from generation_workers.models import Campaign, Candidate, Prompt, Split

FILTER_KEYS = ("splits", "tiers", "relations", "objects", "templates", "prompt_ids", "limit")
RATE_WINDOW = timedelta(minutes=5)  # images per second are measured over the last minutes
MAX_FILTER_VALUES = 1000


def _strings(value: Any, field: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_FILTER_VALUES
        or not all(isinstance(item, str) and 0 < len(item) <= 100 for item in value)
    ):
        raise ValidationFailed(f"{field} must be a non-empty list of names", field=field)
    return value


def _integers(value: Any, field: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_FILTER_VALUES
        or not all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    ):
        raise ValidationFailed(f"{field} must be a non-empty list of integers", field=field)
    return value


def prompt_filter_clean(*, prompt_filter: Any) -> dict[str, Any]:
    """Check a campaign's prompt filter; raise ValidationFailed naming the offending key.

    Keys (all optional, combined with AND; a list matches any of its values): splits, tiers,
    relations (relation keys such as left_of), objects (object names), templates, prompt_ids
    (originals), limit (the first N originals by id).
    """
    if prompt_filter in (None, ""):
        return {}
    if not isinstance(prompt_filter, dict):
        raise ValidationFailed("prompt_filter must be a JSON object", field="prompt_filter")
    clean: dict[str, Any] = {}
    for key, value in prompt_filter.items():
        field = f"prompt_filter.{key}"
        if key not in FILTER_KEYS:
            raise ValidationFailed(
                f"unknown filter {key!r}; use {', '.join(FILTER_KEYS)}", field=field
            )
        if key == "splits":
            clean[key] = _strings(value, field)
            bad = sorted(set(clean[key]) - set(Split.values))
            if bad:
                raise ValidationFailed(f"unknown split {bad[0]!r}", field=field)
        elif key in ("relations", "objects", "templates"):
            clean[key] = _strings(value, field)
        elif key in ("tiers", "prompt_ids"):
            clean[key] = _integers(value, field)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationFailed("limit must be a positive integer", field=field)
        else:
            clean[key] = value
    return clean


def campaign_prompts_select(
    *, prompt_set_id: int, prompt_filter: dict[str, Any], include_perturbations: bool
) -> QuerySet[Prompt]:
    """The prompts a campaign renders (the filter picks originals; perturbations follow them)."""
    originals = Prompt.objects.filter(prompt_set_id=prompt_set_id, parent__isnull=True)
    if "splits" in prompt_filter:
        originals = originals.filter(split__in=prompt_filter["splits"])
    if "tiers" in prompt_filter:
        originals = originals.filter(tier__in=prompt_filter["tiers"])
    if "templates" in prompt_filter:
        originals = originals.filter(template__in=prompt_filter["templates"])
    if "prompt_ids" in prompt_filter:
        originals = originals.filter(pk__in=prompt_filter["prompt_ids"])
    for key, column in (("relations", "relation_keys"), ("objects", "object_keys")):
        if key in prompt_filter:
            any_of = Q()
            for name in prompt_filter[key]:
                any_of |= Q(**{f"{column}__contains": f"|{name}|"})
            originals = originals.filter(any_of)
    originals = originals.order_by("id")
    if "limit" in prompt_filter:
        originals = originals[: prompt_filter["limit"]]
    selected = originals.values("pk")
    if not include_perturbations:
        return Prompt.objects.filter(pk__in=selected).order_by("id")
    return Prompt.objects.filter(Q(pk__in=selected) | Q(parent__in=selected)).order_by("id")


def campaign_seeds(*, campaign: Campaign) -> list[int]:
    """The seeds every prompt of the campaign is rendered with (the same for all its prompts)."""
    return [campaign.base_seed + index for index in range(campaign.seeds_per_prompt)]


@dataclass(frozen=True)
class CampaignProgress:
    total: int
    done: int
    failed: int
    cancelled: int
    pending: int
    images_per_second: float | None
    eta_seconds: float | None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled


def campaigns_progress_annotate(
    *, queryset: QuerySet[Campaign], now: datetime | None = None
) -> QuerySet[Campaign]:
    """The campaigns with their candidates counted by status (and done recently), in the same
    query, for lists (see campaign_progress)."""
    now = now or timezone.now()

    def counted(**condition: Any) -> Count:
        return Count(
            "candidates", filter=Q(**{f"candidates__{k}": v for k, v in condition.items()})
        )

    return queryset.annotate(
        progress_total=Count("candidates"),
        progress_done=counted(status=Candidate.Status.DONE),
        progress_failed=counted(status=Candidate.Status.FAILED),
        progress_cancelled=counted(status=Candidate.Status.CANCELLED),
        progress_pending=counted(status=Candidate.Status.PENDING),
        progress_recent=counted(status=Candidate.Status.DONE, finished_at__gte=now - RATE_WINDOW),
    )


def campaign_progress(*, campaign: Campaign, now: datetime | None = None) -> CampaignProgress:
    """Done / failed / total, images per second (over the last minutes while it runs, over the
    whole run once finished) and the time left at that rate."""
    now = now or timezone.now()
    if not hasattr(campaign, "progress_total"):
        campaign = campaigns_progress_annotate(
            queryset=Campaign.objects.filter(pk=campaign.pk), now=now
        ).get()
    rate = None
    if campaign.started_at is not None:
        if campaign.status == Campaign.Status.RUNNING:
            window = min(RATE_WINDOW, now - campaign.started_at).total_seconds()
            made = campaign.progress_recent
        else:
            window = ((campaign.finished_at or now) - campaign.started_at).total_seconds()
            made = campaign.progress_done
        rate = made / window if window > 0 else None
    eta = None
    if campaign.status == Campaign.Status.RUNNING and rate:
        eta = campaign.progress_pending / rate
    return CampaignProgress(
        total=campaign.progress_total,
        done=campaign.progress_done,
        failed=campaign.progress_failed,
        cancelled=campaign.progress_cancelled,
        pending=campaign.progress_pending,
        images_per_second=rate,
        eta_seconds=eta,
    )


def campaign_candidates_select(*, campaign: Campaign) -> QuerySet[Candidate]:
    """Every candidate of the campaign's keys: its own and those earlier campaigns had made.

    The one definition of "a campaign's candidates": a launch reuses the images of its keys
    that an earlier campaign rendered instead of rendering them again, so a campaign's own
    rows alone would miss them. Pair building, active learning, dataset selection by
    campaign and the campaign's candidate list all read it.

    Configs are fixed once used, so a key's params hash is the config's current one.
    """
    from generation_workers.services.config_rules import generator_config_params_hash

    prompts = campaign_prompts_select(
        prompt_set_id=campaign.prompt_set_id,
        prompt_filter=campaign.prompt_filter or {},
        include_perturbations=campaign.include_perturbations,
    )
    keys = Q(campaign=campaign)
    for config in campaign.configs.all():
        keys |= Q(
            config=config,
            params_hash=generator_config_params_hash(config=config),
            prompt__in=prompts.values("pk"),
            seed__in=campaign_seeds(campaign=campaign),
        )
    return Candidate.objects.filter(keys).order_by("id")


def campaign_candidates_finished(*, campaign_id: int) -> QuerySet[Candidate]:
    """The campaign's finished candidates (`campaign_candidates_select`), in id order."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    return campaign_candidates_select(campaign=campaign).filter(status=Candidate.Status.DONE)


def campaign_candidates_recent(*, campaign: Campaign, limit: int = 24) -> list[Candidate]:
    """The latest finished images of a campaign (for the admin's preview)."""
    return list(
        campaign_candidates_finished(campaign_id=campaign.pk)
        .select_related("prompt", "config")
        .order_by("-finished_at", "-id")[:limit]
    )
