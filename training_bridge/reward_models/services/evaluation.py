"""Reward models measured on a frozen version's test split: evaluate one, compare two, show
one's accuracy by relation, and say whether a promotion needs a confirmation.

- Evaluate: a model's pairwise accuracy (Pick-a-Pic tie rule, `trainer.metrics`) on a frozen
  version's test split, by relation, by number of perturbations and by generator config,
  stored in the model's `metrics["evaluations"][<version id>]` with the version's content hash
  (a frozen version never changes, so the figure stays true); small splits are evaluated at
  once, large ones on the `cpu` queue.
- Which version: the candidate's own frozen version, else the most recently frozen version
  with test pairs (`compare_version_default`). The candidate of a comparison is model b (a is
  the baseline; the table's delta is b - a) unless b is the promoted one and a is not.
- A version whose test split holds no labelled pair is said plainly (`test_pairs == 0`):
  nothing is evaluated and there is no table.
- Every accuracy comes with its Wilson 95% interval (`annotation.stats.wilson_interval`, the
  one definition), over the same pairs and with ties counting half, as the accuracy does.
- Promotion: promoting a model whose overall accuracy is below the promoted model's on that
  version (or whose comparison is still being evaluated) needs `confirm`
  (`promotion_confirmation_reason`; `registry.reward_model_promote` asks it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.stats import wilson_interval
from config.errors import ValidationFailed
from training_bridge.models import DatasetVersion, RewardModel
from training_bridge.publishing import REWARD_MODEL_EVALUATE, task_send_on_commit
from training_bridge.reward_models.scoring.tables import comparison_rows
from training_bridge.reward_models.selectors.reward_models import (
    EvalPair,
    evaluation_split_chunks,
    evaluation_split_count,
    evaluation_version_get,
    evaluation_version_newest_with_tests,
    model_ref_of,
    reward_model_get,
    reward_model_promoted,
)
from training_bridge.training.trainer.metrics import ScoredPair, accuracy_report

log = logging.getLogger(__name__)

EVAL_SPLIT = "test"


def evaluate_sync_max_pairs() -> int:
    return int(getattr(settings, "REWARD_EVALUATE_SYNC_MAX_PAIRS", 500))


def accuracy_interval(accuracy: float | None, count: int) -> list[float] | None:
    """The Wilson 95% interval of an accuracy over `count` pairs (a tie's half point counts
    as half a success, as in the accuracy itself); None without pairs."""
    if accuracy is None or not count:
        return None
    low, high = wilson_interval(accuracy * count, count)  # type: ignore[arg-type]
    return [low, high]


# -- which version ----------------------------------------------------------------------------


def comparison_candidate(model_a: RewardModel, model_b: RewardModel) -> RewardModel:
    """The model a comparison is about: b, unless b is the promoted one and a is not."""
    promoted = RewardModel.Status.PROMOTED
    if model_b.status == promoted and model_a.status != promoted:
        return model_a
    return model_b


def compare_version_default(*, candidate: RewardModel) -> DatasetVersion | None:
    """The candidate's own frozen version, else the most recently frozen version with test
    pairs (a checkpoint registered without a version); None when there is none."""
    own = candidate.dataset_version
    if own is not None and own.status == DatasetVersion.Status.FROZEN:
        return own
    return evaluation_version_newest_with_tests(split=EVAL_SPLIT)


def _version_chosen(version_id: int | None, candidate: RewardModel) -> DatasetVersion:
    if version_id is not None:
        return evaluation_version_get(version_id=version_id)
    version = compare_version_default(candidate=candidate)
    if version is None:
        raise ValidationFailed(
            f"{candidate} names no frozen dataset version and no frozen version has test "
            "pairs; freeze one with a test split, or choose one",
            field="dataset_version",
        )
    return version


# -- evaluate ---------------------------------------------------------------------------------


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


def _evaluation_for(
    model: RewardModel, version: DatasetVersion, *, refresh: bool, run_now: bool
) -> dict[str, Any] | None:
    """The stored evaluation, or one computed now (`run_now`), or None with one queued."""
    found = None if refresh else _evaluation_stored(model, version)
    if found is None and run_now:
        found = reward_model_evaluate(model_id=model.pk, version_id=version.pk, refresh=True)
    elif found is None:
        reward_model_evaluate_request(model_id=model.pk, version_id=version.pk, refresh=True)
    return found


def _run_now(test_pairs: int, run_now: bool | None) -> bool:
    return test_pairs <= evaluate_sync_max_pairs() if run_now is None else run_now


# -- compare ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    version: DatasetVersion
    model_a: RewardModel
    model_b: RewardModel
    candidate_id: int  # the model the default version was chosen for
    test_pairs: int  # labelled pairs of the version's test split; 0: nothing to compare
    evaluation_a: dict[str, Any] | None
    evaluation_b: dict[str, Any] | None
    rows: list[dict[str, Any]]  # comparison_rows with `a_interval`, `b_interval`
    pending: list[int]  # models being evaluated on the `cpu` queue

    @property
    def ready(self) -> bool:
        return not self.pending


def _with_intervals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # both evaluations score the same pairs of one version, so a row's count is each side's
    return [
        {**row, "a_interval": accuracy_interval(row["a"], row["count"]),
         "b_interval": accuracy_interval(row["b"], row["count"])}
        for row in rows
    ]  # fmt: skip


def reward_models_compare(
    *,
    model_a_id: int,
    model_b_id: int,
    version_id: int | None = None,
    refresh: bool = False,
    run_now: bool | None = None,
) -> Comparison:
    """Two models on one frozen version's test split (default: the candidate's own frozen
    version, else the newest with test pairs).

    Missing evaluations are computed in this call when the split is small (at most
    REWARD_EVALUATE_SYNC_MAX_PAIRS pairs, or `run_now`), else queued (`pending`). A split
    without labelled pairs is evaluated by nobody: `test_pairs` is 0 and `rows` empty."""
    if model_a_id == model_b_id:
        raise ValidationFailed("compare two different models", field="model_b")
    model_a = reward_model_get(model_id=model_a_id)
    model_b = reward_model_get(model_id=model_b_id)
    candidate = comparison_candidate(model_a, model_b)
    version = _version_chosen(version_id, candidate)
    test_pairs = evaluation_split_count(version_id=version.pk, split=EVAL_SPLIT)
    evaluations: list[dict[str, Any] | None] = [None, None]
    pending: list[int] = []
    if test_pairs:
        now = _run_now(test_pairs, run_now)
        for index, model in enumerate((model_a, model_b)):
            evaluations[index] = _evaluation_for(model, version, refresh=refresh, run_now=now)
            if evaluations[index] is None:
                pending.append(model.pk)
    first, second = evaluations
    rows = comparison_rows(first, second) if first is not None and second is not None else []
    return Comparison(
        version=version,
        model_a=reward_model_get(model_id=model_a.pk),
        model_b=reward_model_get(model_id=model_b.pk),
        candidate_id=candidate.pk,
        test_pairs=test_pairs,
        evaluation_a=first,
        evaluation_b=second,
        rows=_with_intervals(rows),
        pending=pending,
    )


# -- one model's accuracy by relation (the registry's view) -----------------------------------


@dataclass(frozen=True)
class ModelEvaluation:
    model: RewardModel
    version: DatasetVersion
    test_pairs: int
    evaluation: dict[str, Any] | None  # None: 0 test pairs, or evaluating on the cpu queue
    rows: list[dict[str, Any]]  # overall, then one per relation key: count, accuracy, interval

    @property
    def pending(self) -> bool:
        return bool(self.test_pairs) and self.evaluation is None


def _relation_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    tables = [("overall", "all", evaluation)] + [
        ("relation", key, value) for key, value in sorted(evaluation["by_relation"].items())
    ]
    return [
        {"group": group, "key": key, "count": value.get("count") or 0,
         "accuracy": value.get("accuracy"),
         "interval": accuracy_interval(value.get("accuracy"), value.get("count") or 0)}
        for group, key, value in tables
    ]  # fmt: skip


def reward_model_evaluation(
    *,
    model_id: int,
    version_id: int | None = None,
    refresh: bool = False,
    run_now: bool | None = None,
) -> ModelEvaluation:
    """One model's accuracy on a frozen version's test split, overall and per relation key of
    the judged prompts (default version: its own frozen one, else the newest with test pairs);
    evaluated now when the split is small, else queued."""
    model = reward_model_get(model_id=model_id)
    version = _version_chosen(version_id, model)
    test_pairs = evaluation_split_count(version_id=version.pk, split=EVAL_SPLIT)
    evaluation = None
    if test_pairs:
        now = _run_now(test_pairs, run_now)
        evaluation = _evaluation_for(model, version, refresh=refresh, run_now=now)
    return ModelEvaluation(
        model=reward_model_get(model_id=model.pk),
        version=version,
        test_pairs=test_pairs,
        evaluation=evaluation,
        rows=_relation_rows(evaluation) if evaluation is not None else [],
    )


# -- what a promotion asks first --------------------------------------------------------------


def _accuracy_text(row: dict[str, Any], side: str) -> str:
    interval = row[f"{side}_interval"]
    return f"{row[side]:.3f} (95% CI {interval[0]:.3f}-{interval[1]:.3f})"


def promotion_confirmation_reason(*, model: RewardModel) -> str | None:
    """Why promoting `model` needs a confirmation, or None.

    It does when the name's promoted model has a higher overall accuracy on the test split of
    the version a comparison would default to (the same pairs for both), or when that
    comparison is still being evaluated on the cpu queue. No other promoted version, or no
    version with test pairs to compare on: nothing to ask."""
    promoted = reward_model_promoted(name=model.name)
    if promoted is None or promoted.pk == model.pk:
        return None
    version = compare_version_default(candidate=model)
    if version is None or not evaluation_split_count(version_id=version.pk, split=EVAL_SPLIT):
        return None
    comparison = reward_models_compare(
        model_a_id=promoted.pk, model_b_id=model.pk, version_id=version.pk
    )
    if comparison.pending:
        return (
            f"{model} and the promoted {promoted} are being compared on {version} (the cpu "
            "queue evaluates them); promote again once the comparison is ready, or confirm"
        )
    overall = comparison.rows[0]
    if overall["a"] is None or overall["b"] is None or overall["b"] >= overall["a"]:
        return None
    overlap = overall["b_interval"][1] >= overall["a_interval"][0]
    return (
        f"{model} compares worse than the promoted {promoted} on {version} "
        f"({comparison.test_pairs} test pairs): accuracy {_accuracy_text(overall, 'b')} against "
        f"{_accuracy_text(overall, 'a')}"
        + ("; the intervals overlap, so the difference may be noise" if overlap else "")
        + "; confirm to promote it anyway"
    )
