"""The reward-model registry: register, promote, archive. Evaluating and comparing models is
`services/evaluation.py`.

- Register: `reward_model_register_run` registers a succeeded run's model, once per run: the
  launcher calls it in the transaction that marks the run succeeded, the API and tests call
  it again by id (it returns the model registered already); `reward_model_register_checkpoint`
  registers a checkpoint folder an external trainer wrote into the default storage. Versions
  count per name (the unique constraint `rewardmodel_unique_version` settles races: a taken
  number is retried).
- Promote: the database holds at most one promoted model per name (`rewardmodel_one_promoted`,
  a partial unique index). Promoting archives the name's promoted model and promotes this one
  in one short transaction; a concurrent promotion that took the slot first makes the insert
  fail, and the promotion is simply run again (last one wins). No check-then-act. A model
  that compares worse than the promoted one is promoted only with `confirm` (a 409 naming
  `confirm` without it): a question to the person, not an invariant.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from training_bridge.models import RewardModel, TrainingRun
from training_bridge.reward_models.scoring.checkpoints import (
    checkpoint_files,
    checkpoint_manifest,
    checkpoint_pickles_refuse,
)
from training_bridge.reward_models.selectors.reward_models import (
    evaluation_version_get,
    reward_model_get,
)
from training_bridge.reward_models.services.evaluation import promotion_confirmation_reason
from training_bridge.training.services.training import DEFAULT_MODEL_NAME, training_run_prefix

log = logging.getLogger(__name__)

_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
RETRIES = 5


# -- register ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    model: RewardModel
    created: bool


def reward_model_register_run(*, run_id: int) -> Registered:
    """The reward model of a succeeded run, as the next version of the run's model name
    (registered once per run; a second call returns it with created=False)."""
    run = TrainingRun.objects.select_related("dataset_version").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"no training run {run_id}", field="run")
    existing = RewardModel.objects.filter(run=run).first()
    if existing is not None:
        return Registered(model=reward_model_get(model_id=existing.pk), created=False)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise Conflict(f"run {run.pk} is {run.status}, not succeeded", field="run")
    name = run.config.get("model_name", DEFAULT_MODEL_NAME)
    prefix = training_run_prefix(run_id=run.pk)
    names = [artifact["name"] for artifact in run.artifacts]
    # the trainer writes its checkpoint into checkpoint/; an external trainer may use the root
    artifact_key = (
        f"{prefix}/checkpoint" if any(n.startswith("checkpoint/") for n in names) else prefix
    )
    for _ in range(RETRIES):
        latest = RewardModel.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
        try:
            with transaction.atomic():
                model = RewardModel.objects.create(
                    name=name,
                    version=latest + 1,
                    run=run,
                    dataset_version=run.dataset_version,
                    artifact_key=artifact_key,
                    metrics=run.summary,
                )
        except IntegrityError:
            found = RewardModel.objects.filter(run=run).first()
            if found is not None:  # a concurrent call registered this run
                return Registered(model=reward_model_get(model_id=found.pk), created=False)
            continue  # another registration took this number: count again
        log.info("reward.model.registered model=%s name=%s v=%s run=%s", model.pk, name,
                 model.version, run.pk)  # fmt: skip
        return Registered(model=reward_model_get(model_id=model.pk), created=True)
    raise Conflict(f"could not number a new version of {name!r}; try again", field="model_name")


def reward_model_register_checkpoint(
    *,
    name: str,
    artifact_key: str,
    dataset_version_id: int | None = None,
    metrics: dict[str, Any] | None = None,
) -> Registered:
    """A checkpoint folder in the default storage (the trainer's format) as the next version
    of `name`. The same (name, key) registered again returns the existing model."""
    if not isinstance(name, str) or not _SLUG.match(name):
        raise ValidationFailed("a name of 1 to 100 letters, digits, '-' or '_'", field="name")
    key = artifact_key.strip().strip("/") if isinstance(artifact_key, str) else ""
    if not key or ".." in key.split("/") or len(key) > 500:
        raise ValidationFailed(
            "a storage prefix such as models/my-rm/checkpoint", field="artifact_key"
        )
    if metrics is not None and not isinstance(metrics, dict):
        raise ValidationFailed("must be a JSON object", field="metrics")
    version = None
    if dataset_version_id is not None:
        version = evaluation_version_get(version_id=dataset_version_id)
    existing = RewardModel.objects.filter(name=name, artifact_key=key).first()
    if existing is not None:
        return Registered(model=reward_model_get(model_id=existing.pk), created=False)
    meta = checkpoint_manifest(artifact_key=key)
    checkpoint_pickles_refuse(list(checkpoint_files(artifact_key=key)), artifact_key=key)
    for _ in range(RETRIES):
        latest = RewardModel.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
        try:
            with transaction.atomic():
                model = RewardModel.objects.create(
                    name=name,
                    version=latest + 1,
                    dataset_version=version,
                    artifact_key=key,
                    metrics={**(metrics or {}), "backbone": meta["backbone"],
                             "head": meta.get("head")},
                )  # fmt: skip
        except IntegrityError:
            continue  # another registration took this number: count again
        log.info("reward.model.registered model=%s name=%s v=%s key=%s", model.pk, name,
                 model.version, key)  # fmt: skip
        return Registered(model=reward_model_get(model_id=model.pk), created=True)
    raise Conflict(f"could not number a new version of {name!r}; try again", field="name")


# -- promote ----------------------------------------------------------------------------------


def reward_model_promote(*, model_id: int, confirm: bool = False) -> RewardModel:
    """Make this model the one served for its name; the previous one is archived.

    Without `confirm`, a model that compares worse than the promoted one (or whose comparison
    is still being evaluated) is refused with a 409 naming `confirm`, saying both accuracies."""
    model = reward_model_get(model_id=model_id)
    if model.status == RewardModel.Status.PROMOTED:
        return model
    checkpoint_manifest(artifact_key=model.artifact_key)  # never promote what cannot load
    if not confirm:
        reason = promotion_confirmation_reason(model=model)
        if reason is not None:
            raise Conflict(reason, field="confirm", code="confirmation_required")
    for _ in range(RETRIES):
        try:
            with transaction.atomic():
                RewardModel.objects.filter(
                    name=model.name, status=RewardModel.Status.PROMOTED
                ).exclude(pk=model.pk).update(status=RewardModel.Status.ARCHIVED)
                RewardModel.objects.filter(pk=model.pk).update(
                    status=RewardModel.Status.PROMOTED, promoted_at=timezone.now()
                )
        except IntegrityError:
            continue  # a concurrent promotion of this name committed first: archive it too
        log.info("reward.model.promoted model=%s name=%s v=%s", model.pk, model.name,
                 model.version)  # fmt: skip
        return reward_model_get(model_id=model.pk)
    raise Conflict(f"{model} was promoted concurrently too many times; try again", field="model")


def reward_model_archive(*, model_id: int) -> RewardModel:
    """Retire a candidate; the promoted model is replaced by promoting another, never archived
    alone (RL trainers would lose their reward)."""
    model = reward_model_get(model_id=model_id)
    updated = RewardModel.objects.filter(pk=model.pk, status=RewardModel.Status.CANDIDATE).update(
        status=RewardModel.Status.ARCHIVED
    )
    if not updated and model.status == RewardModel.Status.PROMOTED:
        raise Conflict(
            f"{model} is promoted: promote another version of {model.name!r} instead",
            field="status",
        )
    log.info("reward.model.archived model=%s", model.pk)
    return reward_model_get(model_id=model.pk)
