"""Reads of training runs, their metric points and artifacts, and reward models."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from config.errors import NotFound, ValidationFailed
from training_bridge.models import RewardModel, TrainingLauncher, TrainingMetric, TrainingRun

METRICS_PAGE = 5000


def training_runs_list(
    *, version_id: int | None = None, status: str | None = None
) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.select_related("dataset_version__dataset", "reward_model")
    if version_id is not None:
        runs = runs.filter(dataset_version_id=version_id)
    if status is not None:
        if status not in TrainingRun.Status.values:
            raise ValidationFailed(
                f"unknown status {status!r}; choose one of {', '.join(TrainingRun.Status.values)}",
                field="status",
            )
        runs = runs.filter(status=status)
    return runs.order_by("-created_at", "-pk")


def training_launchers_list() -> QuerySet[TrainingLauncher]:
    """Every launcher definition, enabled first, by name."""
    return TrainingLauncher.objects.order_by("-enabled", "name")


def training_run_get(*, run_id: int) -> TrainingRun:
    run = training_runs_list().filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"no training run {run_id}", field="run")
    return run


def training_metrics_after(
    *, run_id: int, after_id: int = 0, limit: int = METRICS_PAGE
) -> list[dict[str, Any]]:
    """The run's metric points with an id above `after_id`, oldest first (what a polling chart
    has not seen yet), at most `limit`."""
    rows = (
        TrainingMetric.objects.filter(run_id=run_id, id__gt=after_id)
        .order_by("id")
        .values("id", "name", "step", "epoch", "value")[:limit]
    )
    return list(rows)


def training_run_artifact_key(*, run: TrainingRun, name: str) -> str:
    """The storage key of one of the run's listed artifacts (never an arbitrary key)."""
    for artifact in run.artifacts:
        if artifact.get("name") == name:
            return artifact["key"]
    raise NotFound(f"run {run.pk} has no artifact {name!r}", field="name")


def training_run_reward_model(*, run: TrainingRun) -> RewardModel | None:
    return RewardModel.objects.filter(run=run).first()
