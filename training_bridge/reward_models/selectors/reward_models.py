"""Reads of the reward-model registry: models, the promoted one per name, what scoring needs,
a version's evaluation split, and the candidates a scoring request or active learning names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet

from config.errors import Conflict, NotFound, ValidationFailed
from generation_workers.models import Candidate
from training_bridge.models import DatasetRecord, DatasetVersion, RewardModel
from training_bridge.reward_models.scoring.engine import ModelRef
from training_bridge.training.trainer.metrics import pair_config

LABEL_0 = {"a": 1.0, "b": 0.0, "tie": 0.5}  # both_wrong carries no preference: left out


def reward_model_default_name() -> str:
    return str(getattr(settings, "REWARD_MODEL_NAME", "spatial-rm"))


def reward_models_list(*, name: str | None = None, status: str | None = None) -> QuerySet:
    models = RewardModel.objects.select_related("dataset_version__dataset", "run")
    if name:
        models = models.filter(name=name)
    if status:
        if status not in RewardModel.Status.values:
            raise ValidationFailed(
                f"unknown status {status!r}; choose one of {', '.join(RewardModel.Status.values)}",
                field="status",
            )
        models = models.filter(status=status)
    return models.order_by("name", "-version")


def reward_model_get(*, model_id: int) -> RewardModel:
    model = reward_models_list().filter(pk=model_id).first()
    if model is None:
        raise NotFound(f"no reward model {model_id}", field="model")
    return model


def reward_model_promoted(*, name: str) -> RewardModel | None:
    return reward_models_list().filter(name=name, status=RewardModel.Status.PROMOTED).first()


def reward_model_ref(*, name: str | None = None, version: int | None = None) -> ModelRef:
    """What a scoring request is served with: the promoted model of `name` (one indexed
    query, so a promotion shows on the next request), or the pinned `version`."""
    name = name or reward_model_default_name()
    rows = RewardModel.objects.filter(name=name)
    rows = rows.filter(version=version) if version is not None else rows.filter(status="promoted")
    found = rows.values_list("pk", "name", "version", "artifact_key").first()
    if found is None:
        if version is not None:
            raise NotFound(f"reward model {name!r} has no version {version}", field="version")
        if not RewardModel.objects.filter(name=name).exists():
            raise NotFound(f"no reward model named {name!r}", field="model")
        raise Conflict(
            f"no version of {name!r} is promoted; promote one (admin or "
            "POST /api/reward/models/<id>/promote/) or pin a version",
            field="model",
        )
    pk, name, number, key = found
    return ModelRef(id=pk, name=name, version=number, artifact_key=key)


def model_ref_of(model: RewardModel) -> ModelRef:
    return ModelRef(
        id=model.pk, name=model.name, version=model.version, artifact_key=model.artifact_key
    )


# -- evaluation split -------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPair:
    pair_id: int
    caption: str
    key_0: str
    key_1: str
    label_0: float
    relations: tuple[str, ...]
    num_perturbations: int
    config: str


def evaluation_version_get(*, version_id: int) -> DatasetVersion:
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"no dataset version {version_id}", field="dataset_version")
    if version.status != DatasetVersion.Status.FROZEN:
        raise ValidationFailed(
            f"{version} is {version.status}: models are compared on frozen versions only",
            field="dataset_version",
        )
    return version


def evaluation_version_newest_with_tests(*, split: str = "test") -> DatasetVersion | None:
    """The most recently frozen version whose split holds a labelled pair (both-wrong pairs
    carry no preference and do not count)."""
    labelled = DatasetRecord.objects.filter(version_id=OuterRef("pk"), split=split).exclude(
        label=DatasetRecord.Label.BOTH_WRONG
    )
    return (
        DatasetVersion.objects.filter(Exists(labelled), status=DatasetVersion.Status.FROZEN)
        .select_related("dataset")
        .order_by("-frozen_at", "-pk")
        .first()
    )


def evaluation_split_count(*, version_id: int, split: str = "test") -> int:
    return (
        DatasetRecord.objects.filter(version_id=version_id, split=split)
        .exclude(label=DatasetRecord.Label.BOTH_WRONG)
        .count()
    )


def evaluation_split_chunks(
    *, version_id: int, split: str = "test", chunk_size: int = 256
) -> Iterator[list[EvalPair]]:
    """The split's labelled pairs in canonical order, a chunk at a time (keyset pages on the
    position, no cursor held open while a chunk is scored)."""
    after = -1
    while True:
        rows = list(
            DatasetRecord.objects.filter(version_id=version_id, split=split, position__gt=after)
            .order_by("position")
            .values_list("position", "label", "canonical", "image_a_key", "image_b_key")[
                :chunk_size
            ]
        )
        if not rows:
            return
        after = rows[-1][0]
        chunk = [_eval_pair(label, canonical, a, b) for _, label, canonical, a, b in rows]
        yield [pair for pair in chunk if pair is not None]


def _eval_pair(label: str, canonical: str, key_a: str, key_b: str) -> EvalPair | None:
    if label not in LABEL_0:
        return None
    record: dict[str, Any] = json.loads(canonical)
    prompt = record.get("prompt") or {}
    candidates = record.get("candidates") or [{}, {}]
    return EvalPair(
        pair_id=int(record["pair_id"]),
        caption=prompt.get("text", ""),
        key_0=key_a or candidates[0].get("key", ""),
        key_1=key_b or candidates[1].get("key", ""),
        label_0=LABEL_0[label],
        relations=tuple(prompt.get("relations") or ()),
        num_perturbations=int(record.get("num_perturbations") or 0),
        config=pair_config(candidates[0].get("model", ""), candidates[1].get("model", "")),
    )


# -- candidates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateRow:
    id: int
    storage_key: str
    prompt_id: int
    prompt_text: str
    parent_id: int | None
    config_id: int
    seed: int


def candidates_for_scoring(*, candidate_ids: list[int]) -> dict[int, CandidateRow]:
    """Finished candidates by id (with their prompt's text): unknown ids are simply absent."""
    rows = Candidate.objects.filter(pk__in=candidate_ids, status=Candidate.Status.DONE)
    return {row.id: row for row in _candidate_rows(rows)}


def _candidate_rows(rows: QuerySet) -> Iterator[CandidateRow]:
    fields = ("id", "storage_key", "prompt_id", "prompt__text", "prompt__parent_id", "config_id",
              "seed")  # fmt: skip
    for values in rows.values_list(*fields).iterator(chunk_size=2000):
        yield CandidateRow(*values)
