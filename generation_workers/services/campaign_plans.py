"""What a campaign covers: its settings checked, and its generation keys planned as rows.

A campaign renders prompt set (or a filter of it) x configs x seeds. Seeds are
`base_seed .. base_seed + seeds_per_prompt - 1` for every prompt, so an original prompt and
its perturbed copies are rendered with the same configs and seeds (counterfactual pairs).
Every key is one pending candidate row at most (a unique constraint): keys an earlier campaign
rendered are reused, not planned again.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from config.errors import ValidationFailed
from generation_workers.models import Campaign, Candidate, GeneratorConfig, PromptSet
from generation_workers.selectors.campaigns import (
    campaign_prompts_select,
    campaign_seeds,
    prompt_filter_clean,
)
from generation_workers.services.config_rules import generator_config_params_hash

MAX_SEEDS_PER_PROMPT = 1000
MAX_ITEMS = 1_000_000
MAX_SEED = 2**63 - 1
INSERT_CHUNK = 2000


def configs_clean(*, config_ids: Any) -> list[GeneratorConfig]:
    if (
        not isinstance(config_ids, list | tuple)
        or not config_ids
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in config_ids)
    ):
        raise ValidationFailed("configs must be a non-empty list of config ids", field="configs")
    if len(set(config_ids)) != len(config_ids):
        raise ValidationFailed("configs lists a config twice", field="configs")
    configs = list(GeneratorConfig.objects.filter(pk__in=config_ids))
    missing = sorted(set(config_ids) - {c.pk for c in configs})
    if missing:
        raise ValidationFailed(f"no generator config {missing[0]}", field="configs")
    failed = [c for c in configs if c.check_status == GeneratorConfig.CheckStatus.FAILED]
    if failed:
        raise ValidationFailed(
            f"config {failed[0].name!r} failed its check ({failed[0].check_message}); fix it "
            "and check it again",
            field="configs",
        )
    return configs


def prompt_set_ready(*, prompt_set_id: Any) -> PromptSet:
    if isinstance(prompt_set_id, bool) or not isinstance(prompt_set_id, int):
        raise ValidationFailed("prompt_set must be a prompt set id", field="prompt_set")
    prompt_set = PromptSet.objects.filter(pk=prompt_set_id).first()
    if prompt_set is None:
        raise ValidationFailed(f"no prompt set {prompt_set_id}", field="prompt_set")
    if prompt_set.status != PromptSet.Status.READY:
        raise ValidationFailed(
            f"prompt set {prompt_set} is {prompt_set.status}, not ready", field="prompt_set"
        )
    return prompt_set


def campaign_validate(
    *,
    name: str,
    prompt_set_id: int,
    config_ids: Sequence[int],
    seeds_per_prompt: int = 1,
    base_seed: int = 0,
    include_perturbations: bool = True,
    prompt_filter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a campaign's settings; return them clean. Raises ValidationFailed naming the field:
    a ready prompt set, existing configs, a filter that selects prompts, sane seeds, at most
    MAX_ITEMS images, a name not taken."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationFailed("name must be 1 to 200 characters", field="name")
    prompt_set = prompt_set_ready(prompt_set_id=prompt_set_id)
    configs = configs_clean(
        config_ids=list(config_ids) if isinstance(config_ids, list | tuple) else None
    )
    if (
        isinstance(seeds_per_prompt, bool)
        or not isinstance(seeds_per_prompt, int)
        or not 1 <= seeds_per_prompt <= MAX_SEEDS_PER_PROMPT
    ):
        raise ValidationFailed(
            f"seeds_per_prompt must be an integer from 1 to {MAX_SEEDS_PER_PROMPT}",
            field="seeds_per_prompt",
        )
    if (
        isinstance(base_seed, bool)
        or not isinstance(base_seed, int)
        or not 0 <= base_seed <= MAX_SEED - seeds_per_prompt
    ):
        raise ValidationFailed(
            "base_seed must be an integer from 0 to 2**63 - 1 - seeds_per_prompt",
            field="base_seed",
        )
    if not isinstance(include_perturbations, bool):
        raise ValidationFailed(
            "include_perturbations must be true or false", field="include_perturbations"
        )
    clean_filter = prompt_filter_clean(prompt_filter=prompt_filter)
    prompts = campaign_prompts_select(
        prompt_set_id=prompt_set.pk,
        prompt_filter=clean_filter,
        include_perturbations=include_perturbations,
    ).count()
    if prompts == 0:
        raise ValidationFailed(
            "the prompt filter selects no prompt of the set", field="prompt_filter"
        )
    planned = prompts * len(configs) * seeds_per_prompt
    if planned > MAX_ITEMS:
        raise ValidationFailed(
            f"{planned} images planned, over the limit of {MAX_ITEMS}; filter the prompts or use "
            "fewer seeds",
            field="seeds_per_prompt",
        )
    if Campaign.objects.filter(name=name).exists():
        raise ValidationFailed(f"a campaign named {name!r} exists", field="name")
    return {
        "name": name,
        "prompt_set": prompt_set,
        "configs": configs,
        "seeds_per_prompt": seeds_per_prompt,
        "base_seed": base_seed,
        "include_perturbations": include_perturbations,
        "prompt_filter": clean_filter,
        "planned": planned,
    }


def campaign_rows_plan(
    *, campaign: Campaign, configs: list[GeneratorConfig]
) -> Iterator[Candidate]:
    prompt_ids = list(
        campaign_prompts_select(
            prompt_set_id=campaign.prompt_set_id,
            prompt_filter=campaign.prompt_filter or {},
            include_perturbations=campaign.include_perturbations,
        ).values_list("pk", flat=True)
    )
    seeds = campaign_seeds(campaign=campaign)
    for config in configs:
        params_hash = generator_config_params_hash(config=config)
        for prompt_id in prompt_ids:
            for seed in seeds:
                yield Candidate(
                    campaign=campaign,
                    prompt_id=prompt_id,
                    config=config,
                    seed=seed,
                    params_hash=params_hash,
                )


def campaign_rows_insert(*, rows: Iterator[Candidate]) -> int:
    planned = 0
    chunk: list[Candidate] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == INSERT_CHUNK:
            Candidate.objects.bulk_create(chunk, ignore_conflicts=True)
            planned += len(chunk)
            chunk = []
    if chunk:
        Candidate.objects.bulk_create(chunk, ignore_conflicts=True)
        planned += len(chunk)
    return planned


def campaign_rows_adopt(*, campaign: Campaign, configs: list[GeneratorConfig]) -> int:
    """Take over this campaign's keys that finished campaigns left failed or cancelled."""
    prompts = campaign_prompts_select(
        prompt_set_id=campaign.prompt_set_id,
        prompt_filter=campaign.prompt_filter or {},
        include_perturbations=campaign.include_perturbations,
    )
    adopted = 0
    for config in configs:
        adopted += (
            Candidate.objects.filter(
                config=config,
                params_hash=generator_config_params_hash(config=config),
                prompt__in=prompts.values("pk"),
                seed__in=campaign_seeds(campaign=campaign),
                status__in=[Candidate.Status.FAILED, Candidate.Status.CANCELLED],
            )
            .exclude(campaign__status=Campaign.Status.RUNNING)
            .update(
                campaign=campaign,
                status=Candidate.Status.PENDING,
                error="",
                attempts=0,
                finished_at=None,
            )
        )
    return adopted
