"""Training runs: the run config, start (idempotent), cancel, the stale-heartbeat sweep, the
reward model a succeeded run registers, and the demo's short run.

A run is identified by (dataset version, config hash, attempt): starting the same config on
the same version again returns the newest attempt unless `force`, which adds an attempt (the
unique constraint `trainingrun_unique_attempt` settles races). The run executes on the Celery
`training` queue (`training_bridge.services.launchers.training_run_execute`), queued after the
commit. States: queued -> running -> succeeded | failed | cancelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from training_bridge.models import DatasetExport, DatasetVersion, RewardModel, TrainingRun
from training_bridge.trainer.config import ConfigError, config_parse

log = logging.getLogger(__name__)

LAUNCHERS = tuple(TrainingRun.Launcher.values)
PLACEHOLDERS = ("dataset_dir", "output_dir", "run_id", "config_file")
LAUNCHER_KEYS = frozenset({"launcher", "command", "model_name"})
DEFAULT_MODEL_NAME = "spatial-rm"
ACTIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
FINISHED = (
    TrainingRun.Status.SUCCEEDED,
    TrainingRun.Status.FAILED,
    TrainingRun.Status.CANCELLED,
)
_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# The demo's short run: the built-in model, a few epochs, small batches (minutes on CPU).
DEMO_CONFIG = {"backbone": "builtin", "head": "gaussian", "epochs": 4, "batch_size": 32,
               "lr": 0.002, "seed": 0, "image_size": 64}  # fmt: skip


def heartbeat_seconds() -> float:
    return float(getattr(settings, "TRAINING_HEARTBEAT_SECONDS", 5))


def stale_seconds() -> float:
    return float(getattr(settings, "TRAINING_HEARTBEAT_STALE_SECONDS", 120))


def _command_check(command: Any) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ValidationFailed(
            "the external launcher needs a command template, e.g. "
            "'python train.py --data {dataset_dir} --out {output_dir}'",
            field="config.command",
        )
    unknown = sorted({name for name in _PLACEHOLDER.findall(command)} - set(PLACEHOLDERS))
    if unknown:
        raise ValidationFailed(
            f"unknown placeholder {{{unknown[0]}}}; use "
            + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS),
            field="config.command",
        )
    try:
        parts = shlex.split(command)
    except ValueError as exc:
        raise ValidationFailed(
            f"cannot be split into arguments: {exc}", field="config.command"
        ) from None
    if not parts:
        raise ValidationFailed("is empty", field="config.command")
    return command.strip()


def training_config_clean(*, config: Any) -> dict[str, Any]:
    """The run config checked and normalised (every default written in); errors name the key
    as `config.<key>`. Trainer keys are checked by the trainer's own parser."""
    if not isinstance(config, dict):
        raise ValidationFailed("must be a JSON object", field="config")
    launcher = config.get("launcher", TrainingRun.Launcher.BUILTIN)
    if launcher not in LAUNCHERS:
        raise ValidationFailed(
            f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}",
            field="config.launcher",
        )
    model_name = config.get("model_name", DEFAULT_MODEL_NAME)
    if not isinstance(model_name, str) or not _SLUG.match(model_name):
        raise ValidationFailed(
            "a name of 1 to 100 letters, digits, '-' or '_' is required", field="config.model_name"
        )
    trainer_raw = {key: value for key, value in config.items() if key not in LAUNCHER_KEYS}
    try:
        trainer = config_parse(trainer_raw, check_paths=launcher == TrainingRun.Launcher.BUILTIN)
    except ConfigError as exc:
        field = "config" if exc.field == "config" else f"config.{exc.field}"
        raise ValidationFailed(exc.message, field=field) from None
    clean: dict[str, Any] = {"launcher": launcher, "model_name": model_name, **trainer.as_json()}
    if launcher == TrainingRun.Launcher.EXTERNAL:
        clean["command"] = _command_check(config.get("command"))
    elif "command" in config:
        raise ValidationFailed("only the external launcher runs a command", field="config.command")
    return clean


def training_config_hash(*, config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RunStart:
    run: TrainingRun
    created: bool


def _version_trainable(version_id: Any) -> DatasetVersion:
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        raise ValidationFailed("must be a dataset version id", field="dataset_version")
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"no dataset version {version_id}", field="dataset_version")
    if version.status != DatasetVersion.Status.FROZEN:
        raise ValidationFailed(
            f"{version} is {version.status}: only a frozen version can be trained on",
            field="dataset_version",
        )
    return version


def _export_ensure(version: DatasetVersion, fmt: str) -> DatasetExport:
    """The version's export with images in the trainer's format, requested if missing (the
    datasets' export task makes it; the run waits for it)."""
    from training_bridge.services.exports import dataset_export_request

    return dataset_export_request(version_id=version.pk, format=fmt, include_images=True)


def training_run_start(
    *,
    version_id: int,
    config: Any,
    force: bool = False,
    created_by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> RunStart:
    """Start (queue) a run of `config` on a frozen version, or return the existing one.

    With `force` a new attempt is made even when the same config ran before. With
    `enqueue=False` nothing is queued: the caller executes the run itself.
    """
    from training_bridge.tasks import training_run_execute_task

    clean = training_config_clean(config=config)
    version = _version_trainable(version_id)
    config_hash = training_config_hash(config=clean)
    user = created_by if created_by is not None and created_by.is_authenticated else None
    for _ in range(5):
        latest = (
            TrainingRun.objects.filter(dataset_version=version, config_hash=config_hash)
            .order_by("-attempt")
            .first()
        )
        if latest is not None and not force:
            return RunStart(run=latest, created=False)
        try:
            with transaction.atomic():
                run = TrainingRun.objects.create(
                    dataset_version=version,
                    config=clean,
                    config_hash=config_hash,
                    attempt=latest.attempt + 1 if latest else 1,
                    launcher=clean["launcher"],
                    created_by=user,
                )
                _export_ensure(version, clean["dataset_format"])
                if enqueue:
                    training_run_execute_task.delay_on_commit(run_id=run.pk)
        except IntegrityError:
            continue  # another start took this attempt number: look again
        log.info(
            "training.run.queued run=%s version=%s attempt=%s launcher=%s",
            run.pk, version.pk, run.attempt, run.launcher,
        )  # fmt: skip
        return RunStart(run=run, created=True)
    raise Conflict("the run was started concurrently too many times; try again", field="config")


def training_run_cancel(*, run_id: int) -> TrainingRun:
    """Cancel a run: a queued one at once; a running one stops at the trainer's next step
    check (the worker records `cancelled`). Cancelling twice is harmless."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"no training run {run_id}", field="run")
        if run.status in FINISHED:
            raise Conflict(f"run {run.pk} is {run.status}: nothing to cancel", field="status")
        if run.status == TrainingRun.Status.QUEUED:
            run.status = TrainingRun.Status.CANCELLED
            run.finished_at = timezone.now()
            run.cancel_requested = True
            run.save(update_fields=["status", "finished_at", "cancel_requested"])
        elif not run.cancel_requested:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
    log.info("training.run.cancel run=%s status=%s", run.pk, run.status)
    return run


def training_runs_sweep(*, now: datetime | None = None, stale_after: float | None = None) -> int:
    """Mark failed (or cancelled, if asked) the running runs whose worker stopped sending
    heartbeats: it crashed or was killed. Returns how many were swept."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_after if stale_after is not None else stale_seconds())
    swept = 0
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff)
    for run in stale.only("pk", "heartbeat_at", "cancel_requested", "worker"):
        cancelled = run.cancel_requested
        last = run.heartbeat_at.isoformat(timespec="seconds")
        updated = TrainingRun.objects.filter(
            pk=run.pk, status=TrainingRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=TrainingRun.Status.CANCELLED if cancelled else TrainingRun.Status.FAILED,
            error=(
                f"the training worker {run.worker or '(unknown)'} stopped sending heartbeats "
                f"(last at {last}): it crashed or was killed. Start the run again with force."
            ),
            finished_at=now,
            run_token=None,
        )
        if updated:
            swept += 1
            log.warning("training.run.swept run=%s worker=%s last=%s", run.pk, run.worker, last)
    return swept


def reward_model_register(*, run_id: int) -> RewardModel:
    """The candidate reward model of a succeeded run (once per run; versions count per name)."""
    run = TrainingRun.objects.select_related("dataset_version").get(pk=run_id)
    existing = RewardModel.objects.filter(run=run).first()
    if existing is not None:
        return existing
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise Conflict(f"run {run.pk} is {run.status}, not succeeded", field="run")
    name = run.config.get("model_name", DEFAULT_MODEL_NAME)
    keys = {artifact["name"]: artifact["key"] for artifact in run.artifacts}
    prefix = training_run_prefix(run_id=run.pk)
    artifact_key = (
        f"{prefix}/checkpoint" if any(n.startswith("checkpoint/") for n in keys) else prefix
    )
    for _ in range(5):
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
            if found is not None:
                return found
            continue
        log.info("training.reward_model.registered model=%s name=%s v=%s", model.pk, name,
                 model.version)  # fmt: skip
        return model
    raise Conflict(f"could not number a new version of {name!r}; try again", field="model_name")


def training_run_prefix(*, run_id: int) -> str:
    """Where a run's artifacts live in the default storage."""
    return f"training/runs/{run_id}"


def training_run_demo_start(
    *,
    version_id: int | None = None,
    dataset_name: str = "demo",
    epochs: int | None = None,
    created_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    """A short built-in training run on the demo's dataset version (the newest frozen version
    of `dataset_name` unless `version_id`); idempotent like every start."""
    if version_id is None:
        version = (
            DatasetVersion.objects.filter(
                dataset__name=dataset_name, status=DatasetVersion.Status.FROZEN
            )
            .order_by("-number")
            .first()
        )
        if version is None:
            raise NotFound(
                f"dataset {dataset_name!r} has no frozen version yet", field="dataset_version"
            )
        version_id = version.pk
    config = {**DEMO_CONFIG, **({"epochs": epochs} if epochs else {})}
    return training_run_start(version_id=version_id, config=config, created_by=created_by).run
