"""Filter and split specs checked against the database: every reference must name a row.

`dataset_specs_resolve` parses both specs (training_bridge.datasets.aggregation.specs), replaces
queue, campaign and annotator names with ids, and refuses references to nothing, naming the exact
key (`filter_spec.queues[1]: no labeling queue 'nope'`; `filter_spec.criterion: queue 'q' asks
no criterion 'overall'`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model

from annotation.models import AnnotatorProfile, AnnotatorQueueState, LabelingQueue
from config.errors import ValidationFailed
from generation_workers.models import Campaign, Prompt
from training_bridge.datasets.aggregation.specs import (
    FilterSpec,
    SpecInvalid,
    SplitSpec,
    filter_spec_parse,
    split_spec_parse,
)


@dataclass(frozen=True)
class ResolvedSpecs:
    filter: FilterSpec
    split: SplitSpec
    queue_names: dict[int, str]
    campaign_names: dict[int, str]


def _resolve(
    refs: tuple[int | str, ...], *, model: type[Model], name_field: str, field: str, what: str
) -> dict[int, str]:
    resolved: dict[int, str] = {}
    for index, ref in enumerate(refs):
        lookup = {"pk": ref} if isinstance(ref, int) else {name_field: ref}
        row = model.objects.filter(**lookup).values_list("pk", name_field).first()
        if row is None:
            raise ValidationFailed(f"no {what} {ref!r}", field=f"{field}[{index}]")
        resolved[row[0]] = row[1]
    return dict(sorted(resolved.items()))


def _mentioned(keys_field: str, key: str) -> bool:
    return Prompt.objects.filter(**{f"{keys_field}__contains": f"|{key}|"}).exists()


def _criterion_check(name: str, queues: dict[int, str]) -> None:
    """Every named queue asks the criterion; without queues, at least one queue does."""
    asked = LabelingQueue.objects.filter(pk__in=list(queues)) if queues else LabelingQueue.objects
    criteria = dict(asked.values_list("pk", "criteria"))
    asking = [pk for pk, items in criteria.items() if any(c.get("name") == name for c in items)]
    if not queues:
        if not asking:
            raise ValidationFailed(
                f"no labeling queue asks a criterion {name!r}", field="filter_spec.criterion"
            )
        return
    for pk, queue_name in queues.items():
        if pk not in asking:
            names = [c.get("name") for c in criteria[pk]] or ["(only the default question)"]
            raise ValidationFailed(
                f"queue {queue_name!r} asks no criterion {name!r} (it asks: {', '.join(names)})",
                field="filter_spec.criterion",
            )


def dataset_specs_resolve(*, filter_spec: Any, split_spec: Any) -> ResolvedSpecs:
    try:
        spec = filter_spec_parse(filter_spec)
        split = split_spec_parse(split_spec)
    except SpecInvalid as exc:
        raise ValidationFailed(exc.detail, field=exc.field) from None
    queues = _resolve(
        spec.queues,
        model=LabelingQueue,
        name_field="name",
        field="filter_spec.queues",
        what="labeling queue",
    )
    campaigns = _resolve(
        spec.campaigns,
        model=Campaign,
        name_field="name",
        field="filter_spec.campaigns",
        what="campaign",
    )
    annotators = spec.annotators
    if annotators.mode == "list":
        users = _resolve(
            annotators.ids,
            model=get_user_model(),
            name_field="username",
            field="filter_spec.annotators.ids",
            what="annotator",
        )
        annotators = replace(annotators, ids=tuple(users))
    elif annotators.mode == "quality":
        if (
            not AnnotatorProfile.objects.filter(quality_score__isnull=False).exists()
            and not AnnotatorQueueState.objects.filter(trust__isnull=False).exists()
        ):
            raise ValidationFailed(
                "no annotator has a trust score yet (gold answers or a quality score); use "
                "mode 'all' or 'list'",
                field="filter_spec.annotators.min_quality",
            )
    for index, key in enumerate(split.held_out_objects):
        if not _mentioned("object_keys", key):
            raise ValidationFailed(
                f"no prompt mentions the object {key!r}",
                field=f"split_spec.held_out.objects[{index}]",
            )
    for index, key in enumerate(split.held_out_relations):
        if not _mentioned("relation_keys", key):
            raise ValidationFailed(
                f"no prompt mentions the relation {key!r}",
                field=f"split_spec.held_out.relations[{index}]",
            )
    if spec.criterion is not None:
        _criterion_check(spec.criterion, queues)
    spec = replace(spec, queues=tuple(queues), campaigns=tuple(campaigns), annotators=annotators)
    return ResolvedSpecs(filter=spec, split=split, queue_names=queues, campaign_names=campaigns)
