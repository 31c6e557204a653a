"""Training runs: the run config, start (idempotent), cancel, the stale-heartbeat sweep, the
reward model a succeeded run registers, and the demo's short run.

A run is identified by (dataset version, config hash, attempt): starting the same config on
the same version again returns the newest attempt unless `force`, which adds an attempt (the
unique constraint `trainingrun_unique_attempt` settles races). The run executes on the Celery
`training` queue (`training_bridge.training.services.launchers.training_run_execute`), queued
after the commit. States: queued -> running -> succeeded | failed | cancelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from training_bridge.models import (
    DatasetExport,
    DatasetVersion,
    TrainingLauncher,
    TrainingRun,
)
from training_bridge.publishing import TRAINING_RUN_EXECUTE, task_send_on_commit
from training_bridge.training.trainer.config import DATASET_FORMATS, ConfigError, config_parse

log = logging.getLogger(__name__)

BUILTIN = TrainingRun.Launcher.BUILTIN.value
KUBERNETES = TrainingRun.Launcher.KUBERNETES.value
LAUNCHER_KEYS = frozenset({"launcher", "model_name"})
# A Kubernetes run's pod resources besides its GPUs (`devices`); the rest comes from settings.
KUBERNETES_KEYS = ("cpu", "memory")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
# A run of a launcher definition: these keys and nothing else (its settings go under options).
DEFINITION_KEYS = frozenset({"launcher", "model_name", "dataset_format", "options"})
DEFAULT_MODEL_NAME = "spatial-rm"
ACTIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
FINISHED = (
    TrainingRun.Status.SUCCEEDED,
    TrainingRun.Status.FAILED,
    TrainingRun.Status.CANCELLED,
)
MAX_OPTIONS = 100
MAX_OPTION_LIST = 1000
MAX_OPTION_TEXT = 4096
# Option strings are data for the command's config file; these would only matter to a shell,
# so a value holding one is a mistake or an attack either way.
SHELL_METACHARACTERS = (";", "|", "&", "$", "`", "\n", "\r", "\x00", ">", "<")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
_OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# The demo's short run: the built-in model on one thread (the demo's worker shares the
# machine), up to 15 epochs, the best validation epoch kept: enough for its test split.
DEMO_CONFIG = {"backbone": "builtin", "head": "gaussian", "epochs": 15, "batch_size": 32,
               "lr": 0.002, "seed": 0, "image_size": 64, "num_threads": 1, "log_every_steps": 5,
               "early_stopping": {"metric": "val/accuracy", "patience": 5}}  # fmt: skip


def heartbeat_seconds() -> float:
    return float(getattr(settings, "TRAINING_HEARTBEAT_SECONDS", 5))


def stale_seconds() -> float:
    return float(getattr(settings, "TRAINING_HEARTBEAT_STALE_SECONDS", 120))


def _option_text(value: str, field: str) -> str:
    for char in SHELL_METACHARACTERS:
        if char in value:
            shown = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL"}.get(
                char, repr(char)
            )
            raise ValidationFailed(
                f"contains {shown}, a shell metacharacter: options are data for the launcher's "
                "config file, never a command line",
                field=field,
            )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed("is not valid text (a lone surrogate)", field=field) from None
    if len(value) > MAX_OPTION_TEXT:
        raise ValidationFailed(f"is longer than {MAX_OPTION_TEXT} characters", field=field)
    if value.startswith(("/", "~")):
        raise ValidationFailed(
            f"{value!r} is an absolute path: paths in options are relative to the run's folder",
            field=field,
        )
    if ".." in re.split(r"[/\\]", value):
        raise ValidationFailed(f"{value!r} leaves the run's folder ('..')", field=field)
    return value


def _option_scalar(value: Any, field: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValidationFailed("is out of the 64-bit integer range", field=field)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationFailed("must be a finite number", field=field)
        return value
    if isinstance(value, str):
        return _option_text(value, field)
    raise ValidationFailed(
        "must be a string, number, true/false or null (or a list of those)", field=field
    )


def _options_clean(options: Any) -> dict[str, Any]:
    """A launcher's options: an object of JSON scalars or lists of them, each string free of
    shell metacharacters and of paths that leave the run's folder."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValidationFailed("must be an object of settings", field="config.options")
    if len(options) > MAX_OPTIONS:
        raise ValidationFailed(f"has more than {MAX_OPTIONS} keys", field="config.options")
    clean: dict[str, Any] = {}
    for key, value in options.items():
        if not _OPTION_KEY.match(key):
            raise ValidationFailed(
                "an option name is 1 to 64 letters, digits, '_', '.' or '-'",
                field="config.options",
            )
        field = f"config.options.{key}"
        if isinstance(value, list):
            if len(value) > MAX_OPTION_LIST:
                raise ValidationFailed(f"has more than {MAX_OPTION_LIST} items", field=field)
            clean[key] = [_option_scalar(item, f"{field}[{i}]") for i, item in enumerate(value)]
        else:
            clean[key] = _option_scalar(value, field)
    return dict(sorted(clean.items()))


def _model_name(config: dict[str, Any]) -> str:
    model_name = config.get("model_name", DEFAULT_MODEL_NAME)
    if not isinstance(model_name, str) or not _SLUG.match(model_name):
        raise ValidationFailed(
            "a name of 1 to 100 letters, digits, '-' or '_' is required", field="config.model_name"
        )
    return model_name


def _builtin_clean(config: dict[str, Any], *, check_paths: bool = True) -> dict[str, Any]:
    if "options" in config:
        raise ValidationFailed(
            "the built-in trainer takes its settings as top-level keys", field="config.options"
        )
    model_name = _model_name(config)
    trainer_raw = {key: value for key, value in config.items() if key not in LAUNCHER_KEYS}
    model_path = trainer_raw.get("model_path")
    if isinstance(model_path, str):  # an absolute folder on the worker, but never shell
        for char in SHELL_METACHARACTERS:
            if char in model_path:
                raise ValidationFailed(
                    f"contains {char!r}, a shell metacharacter", field="config.model_path"
                )
    try:
        trainer = config_parse(trainer_raw, check_paths=check_paths)
    except ConfigError as exc:
        field = "config" if exc.field == "config" else f"config.{exc.field}"
        raise ValidationFailed(exc.message, field=field) from None
    return {"launcher": BUILTIN, "model_name": model_name, **trainer.as_json()}


def _kubernetes_clean(config: dict[str, Any]) -> dict[str, Any]:
    """The built-in trainer's config plus `kubernetes` ({"cpu": "8", "memory": "48Gi"}, both
    optional); `devices` is the pod's GPU count. A model folder is a path inside the Job's
    image or volumes, so it is not looked for here."""
    if not getattr(settings, "TRAINING_KUBERNETES_ENABLED", False):
        raise ValidationFailed(
            "the Kubernetes launcher is not enabled here (TRAINING_KUBERNETES_ENABLED); "
            "choose builtin or a defined launcher",
            field="config.launcher",
        )
    job = config.get("kubernetes", {})
    if not isinstance(job, dict):
        raise ValidationFailed(
            'must be an object such as {"cpu": "8", "memory": "48Gi"}', field="config.kubernetes"
        )
    unknown = sorted(set(job) - set(KUBERNETES_KEYS))
    if unknown:
        raise ValidationFailed(
            f"unknown key; a Kubernetes run takes {' and '.join(KUBERNETES_KEYS)} here, its GPU "
            "count is `devices`",
            field=f"config.kubernetes.{unknown[0]}",
        )
    for key, value in job.items():
        if not isinstance(value, str) or not _QUANTITY.match(value):
            raise ValidationFailed(
                f'must be a Kubernetes quantity as a string ("8", "500m", "48Gi"), got {value!r}',
                field=f"config.kubernetes.{key}",
            )
    clean = _builtin_clean(
        {k: v for k, v in config.items() if k not in ("launcher", "kubernetes")}, check_paths=False
    )
    if clean["device"] not in ("auto", "cuda"):
        raise ValidationFailed(
            f"a Kubernetes run takes `devices` whole GPUs of its pod; device must be auto or "
            f"cuda, got {clean['device']!r}",
            field="config.device",
        )
    return {**clean, "launcher": KUBERNETES, "kubernetes": dict(sorted(job.items()))}


def _definition_clean(
    config: dict[str, Any], launcher: str
) -> tuple[dict[str, Any], TrainingLauncher]:
    definition = TrainingLauncher.objects.filter(name=launcher, enabled=True).first()
    if definition is None:
        names = list(
            TrainingLauncher.objects.filter(enabled=True).values_list("name", flat=True)[:50]
        )
        raise ValidationFailed(
            f"unknown launcher {launcher!r}; choose builtin"
            + (f" or one of {', '.join(names)}" if names else "")
            + " (launchers are defined by an admin)",
            field="config.launcher",
        )
    unknown = sorted(set(config) - DEFINITION_KEYS)
    if unknown:
        raise ValidationFailed(
            f"unknown key for the {launcher} launcher; its settings go under options",
            field=f"config.{unknown[0]}",
        )
    dataset_format = config.get("dataset_format", "parquet")
    if dataset_format not in DATASET_FORMATS:
        raise ValidationFailed(
            f"unknown value {dataset_format!r}; choose one of {', '.join(DATASET_FORMATS)}",
            field="config.dataset_format",
        )
    clean = {
        "launcher": definition.name,
        "model_name": _model_name(config),
        "dataset_format": dataset_format,
        "options": _options_clean(config.get("options")),
    }
    return clean, definition


def _config_clean(config: Any) -> tuple[dict[str, Any], TrainingLauncher | None]:
    if not isinstance(config, dict):
        raise ValidationFailed("must be a JSON object", field="config")
    if "command" in config:
        raise ValidationFailed(
            "a run config carries no command: ask an admin to define a launcher for it, then "
            'pick it by name ({"launcher": "<name>", "options": {...}})',
            field="config.command",
        )
    launcher = config.get("launcher", BUILTIN)
    if not isinstance(launcher, str):
        raise ValidationFailed("must be a launcher's name", field="config.launcher")
    if launcher == BUILTIN:
        return _builtin_clean(config), None
    if launcher == KUBERNETES:
        return _kubernetes_clean(config), None
    return _definition_clean(config, launcher)


def training_config_clean(*, config: Any) -> dict[str, Any]:
    """The run config checked and normalised (every default written in); errors name the key
    as `config.<key>`.

    `launcher` is "builtin" (the default; the trainer's keys, checked by its own parser),
    "kubernetes" (the same trainer as a Kubernetes Job: training/services/kubernetes.py) or
    the name of an enabled launcher definition, whose config is `model_name`,
    `dataset_format` and `options`: data written to the command's config file, never a
    command line (a `command` key is refused).
    """
    return _config_clean(config)[0]


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
    from training_bridge.datasets.services.exports import dataset_export_request

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
    clean, definition = _config_clean(config)
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
                    launcher_definition=definition,
                    created_by=user,
                )
                _export_ensure(version, clean["dataset_format"])
                if enqueue:
                    task_send_on_commit(TRAINING_RUN_EXECUTE, kwargs={"run_id": run.pk})
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
