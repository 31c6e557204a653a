"""The reward-model registry: register, evaluate on a version's test split, compare, promote.

- Register: `reward_model_register_run` registers a succeeded run's model, once per run: the
  launcher calls it in the transaction that marks the run succeeded, the API and tests call
  it again by id (it returns the model registered already); `reward_model_register_checkpoint`
  registers a checkpoint folder an external trainer wrote into the default storage. Versions
  count per name (the unique constraint `rewardmodel_unique_version` settles races: a taken
  number is retried).
- Evaluate: a model's pairwise accuracy (Pick-a-Pic tie rule, `trainer.metrics`) on a frozen
  version's test split, by relation, by number of perturbations and by generator config,
  stored in the model's `metrics["evaluations"][<version id>]` with the version's content hash
  (a frozen version never changes, so the figure stays true); small splits are evaluated at
  once, large ones on the `cpu` queue.
- Compare: both models' evaluations side by side (`scoring.tables`).
- Promote: the database holds at most one promoted model per name (`rewardmodel_one_promoted`,
  a partial unique index). Promoting archives the name's promoted model and promotes this one
  in one short transaction; a concurrent promotion that took the slot first makes the insert
  fail, and the promotion is simply run again (last one wins). No check-then-act.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from training_bridge.models import DatasetVersion, RewardModel, TrainingRun
from training_bridge.publishing import REWARD_MODEL_EVALUATE, task_send_on_commit
from training_bridge.reward_models.scoring.checkpoints import (
    checkpoint_files,
    checkpoint_manifest,
    checkpoint_pickles_refuse,
)
from training_bridge.reward_models.scoring.tables import comparison_rows
from training_bridge.reward_models.selectors.reward_models import (
    EvalPair,
    evaluation_split_chunks,
    evaluation_split_count,
    evaluation_version_get,
    model_ref_of,
    reward_model_get,
)
from training_bridge.training.services.training import DEFAULT_MODEL_NAME, training_run_prefix
from training_bridge.training.trainer.metrics import ScoredPair, accuracy_report

log = logging.getLogger(__name__)

_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
RETRIES = 5
EVAL_SPLIT = "test"


def evaluate_sync_max_pairs() -> int:
    return int(getattr(settings, "REWARD_EVALUATE_SYNC_MAX_PAIRS", 500))


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


def reward_model_promote(*, model_id: int) -> RewardModel:
    """Make this model the one served for its name; the previous one is archived."""
    model = reward_model_get(model_id=model_id)
    if model.status == RewardModel.Status.PROMOTED:
        return model
    checkpoint_manifest(artifact_key=model.artifact_key)  # never promote what cannot load
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


# -- evaluate and compare ---------------------------------------------------------------------


def _evaluation_stored(model: RewardModel, version: DatasetVersion) -> dict[str, Any] | None:
    found = ((model.metrics or {}).get("evaluations") or {}).get(str(version.pk))
    if isinstance(found, dict) and (found.get("version") or {}).get("content_hash") == (
        version.content_hash
    ):
        return found
    return None


def _tie_margin(model: RewardModel) -> float:
    config = (model.run.config or {}) if model.run_id else {}
    value = config.get("tie_margin", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def reward_model_evaluate(
    *, model_id: int, version_id: int, refresh: bool = False
) -> dict[str, Any]:
    """The model's accuracy report on the version's test split (stored; computed if missing or
    `refresh`)."""
    from training_bridge.datasets.services.artifacts import StorageImageReader
    from training_bridge.reward_models.services.scoring import scoring_engine, scoring_model_load

    model = reward_model_get(model_id=model_id)
    version = evaluation_version_get(version_id=version_id)
    stored = _evaluation_stored(model, version)
    if stored is not None and not refresh:
        return stored
    loaded = scoring_model_load(ref=model_ref_of(model))
    engine = scoring_engine()
    reader = StorageImageReader()
    stds: list[float] = []

    def scored() -> Iterator[ScoredPair]:
        for chunk in evaluation_split_chunks(version_id=version.pk, split=EVAL_SPLIT):
            count = len(chunk)
            images = reader([p.key_0 for p in chunk] + [p.key_1 for p in chunk])
            captions = [p.caption for p in chunk]
            scores = engine.score(loaded, captions + captions, images)
            for row, pair in enumerate(chunk):
                first, second = scores[row], scores[count + row]
                stds.extend(s for s in (first.std, second.std) if s is not None)
                yield _scored_pair(pair, first.mean, second.mean, first.std, second.std)

    try:
        report = accuracy_report(scored(), tie_margin=_tie_margin(model))
    finally:
        reader.close()
    evaluation = {
        **report.as_json(),
        "split": EVAL_SPLIT,
        "tie_margin": _tie_margin(model),
        "mean_std": sum(stds) / len(stds) if stds else None,
        "version": {"id": version.pk, "dataset": version.dataset.name, "number": version.number,
                    "content_hash": version.content_hash},
        "evaluated_at": timezone.now().isoformat(timespec="seconds"),
    }  # fmt: skip
    with transaction.atomic():
        row = RewardModel.objects.select_for_update().get(pk=model.pk)
        metrics = dict(row.metrics or {})
        metrics["evaluations"] = {**(metrics.get("evaluations") or {}), str(version.pk): evaluation}
        row.metrics = metrics
        row.save(update_fields=["metrics"])
    log.info("reward.model.evaluated model=%s version=%s pairs=%s accuracy=%s", model.pk,
             version.pk, evaluation["count"], evaluation["accuracy"])  # fmt: skip
    return evaluation


def _scored_pair(pair: EvalPair, mean_0, mean_1, std_0, std_1) -> ScoredPair:
    return ScoredPair(
        pair_id=pair.pair_id, label_0=pair.label_0, score_0=mean_0, score_1=mean_1,
        relations=pair.relations, num_perturbations=pair.num_perturbations, config=pair.config,
        std_0=std_0, std_1=std_1,
    )  # fmt: skip


def reward_model_evaluate_request(*, model_id: int, version_id: int, refresh: bool = False):
    """Evaluate on the `cpu` queue, after the commit."""
    task_send_on_commit(
        REWARD_MODEL_EVALUATE,
        kwargs={"model_id": model_id, "version_id": version_id, "refresh": refresh},
    )


@dataclass(frozen=True)
class Comparison:
    version: DatasetVersion
    model_a: RewardModel
    model_b: RewardModel
    evaluation_a: dict[str, Any] | None
    evaluation_b: dict[str, Any] | None
    rows: list[dict[str, Any]]
    pending: list[int]  # models being evaluated on the `cpu` queue

    @property
    def ready(self) -> bool:
        return not self.pending


def reward_models_compare(
    *,
    model_a_id: int,
    model_b_id: int,
    version_id: int | None = None,
    refresh: bool = False,
    run_now: bool | None = None,
) -> Comparison:
    """Two models on one frozen version's test split (default: model a's training version).

    Missing evaluations are computed in this call when the split is small (at most
    REWARD_EVALUATE_SYNC_MAX_PAIRS pairs, or `run_now`), else queued (`pending`)."""
    if model_a_id == model_b_id:
        raise ValidationFailed("compare two different models", field="model_b")
    model_a = reward_model_get(model_id=model_a_id)
    model_b = reward_model_get(model_id=model_b_id)
    version_id = version_id or model_a.dataset_version_id or model_b.dataset_version_id
    if version_id is None:
        raise ValidationFailed(
            "neither model names a dataset version; choose one to compare on",
            field="dataset_version",
        )
    version = evaluation_version_get(version_id=version_id)
    if run_now is None:
        run_now = evaluation_split_count(version_id=version.pk) <= evaluate_sync_max_pairs()
    evaluations: list[dict[str, Any] | None] = []
    pending: list[int] = []
    for model in (model_a, model_b):
        found = None if refresh else _evaluation_stored(model, version)
        if found is None and run_now:
            found = reward_model_evaluate(model_id=model.pk, version_id=version.pk, refresh=True)
        elif found is None:
            reward_model_evaluate_request(model_id=model.pk, version_id=version.pk, refresh=True)
            pending.append(model.pk)
        evaluations.append(found)
    first, second = evaluations
    rows = comparison_rows(first, second) if first is not None and second is not None else []
    return Comparison(
        version=version,
        model_a=reward_model_get(model_id=model_a.pk),
        model_b=reward_model_get(model_id=model_b.pk),
        evaluation_a=first,
        evaluation_b=second,
        rows=rows,
        pending=pending,
    )
