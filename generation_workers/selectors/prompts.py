"""Reads of prompt sets and prompts: filtering and composition counts."""

from typing import Any

from django.db.models import Count, Q, QuerySet

from generation_workers.models import Prompt, PromptSet
from generation_workers.spatial import RELATION_IDS

TIER_NAMES = {1: "single", 2: "multi", 3: "scene"}


def prompt_list(
    *,
    prompt_set_id: int | None = None,
    relation: str | None = None,
    object_name: str | None = None,
    tier: int | None = None,
    split: str | None = None,
    perturbation_type: str | None = None,
    originals_only: bool = False,
) -> QuerySet[Prompt]:
    prompts = Prompt.objects.all()
    if prompt_set_id is not None:
        prompts = prompts.filter(prompt_set_id=prompt_set_id)
    if relation:
        prompts = prompts.filter(relation_keys__contains=f"|{relation}|")
    if object_name:
        prompts = prompts.filter(object_keys__contains=f"|{object_name}|")
    if tier is not None:
        prompts = prompts.filter(tier=tier)
    if split:
        prompts = prompts.filter(split=split)
    if perturbation_type is not None:
        prompts = prompts.filter(perturbation_type=perturbation_type)
    if originals_only:
        prompts = prompts.filter(parent__isnull=True)
    return prompts.order_by("id")


def prompt_set_counts(*, prompt_set: PromptSet) -> dict[str, Any]:
    """Counts by relation, tier, split and perturbation type (one scan per grouping)."""
    prompts = Prompt.objects.filter(prompt_set=prompt_set)
    by_relation = prompts.aggregate(
        **{rel: Count("id", filter=Q(relation_keys__contains=f"|{rel}|")) for rel in RELATION_IDS}
    )

    def grouped(field: str) -> dict[str, int]:
        rows = prompts.values(field).annotate(n=Count("id")).order_by(field)
        return {str(row[field]): row["n"] for row in rows}

    tiers = {TIER_NAMES.get(int(k), k): v for k, v in grouped("tier").items()}
    perturbations = {(k or "original"): v for k, v in grouped("perturbation_type").items()}
    return {
        "total": sum(tiers.values()),
        "originals": perturbations.get("original", 0),
        "by_relation": {rel: n for rel, n in by_relation.items() if n},
        "by_tier": tiers,
        "by_split": grouped("split"),
        "by_perturbation": perturbations,
    }


def prompt_set_sample(*, prompt_set: PromptSet, size: int = 10) -> list[Prompt]:
    """The first originals with their perturbations, for a preview."""
    originals = list(
        Prompt.objects.filter(prompt_set=prompt_set, parent__isnull=True)
        .prefetch_related("perturbations")
        .order_by("id")[:size]
    )
    return originals
