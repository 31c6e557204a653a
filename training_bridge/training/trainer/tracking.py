"""Where the built-in trainer's metrics go besides metrics.jsonl (the run page's curves).

- TensorBoard, always: event files under `<output_dir>/tensorboard/`, stored with the run's
  other artifacts (`tensorboard --logdir` on the downloaded folder shows them).
- MLflow, when `MLFLOW_TRACKING_URI` is set in the trainer's environment (on a training
  worker: the worker's own environment; the launcher passes the MLFLOW_* variables on).
- Weights & Biases, when `WANDB_PROJECT` is set (likewise with the WANDB_* variables).

mlflow and wandb are imported only when configured. Configured but not installed is a clear
error before anything runs (`trackers_check`, called by the launcher when a run starts on a
worker and by the trainer's command line); neither is a dependency of SpatialPrefs.

No Django here, and torch only inside `TensorBoardTracker` (torch.utils.tensorboard).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

TENSORBOARD_DIR = "tensorboard"
RUN_NAME_PREFIX = "spatialprefs-run-"
# MLflow's metric and parameter keys take letters, digits and _ - . space : / only.
_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. :/]")


@dataclass(frozen=True)
class Tracker:
    name: str
    label: str
    package: str
    switch: str  # the environment variable that turns it on
    env_prefix: str  # the library's own settings, passed on to the trainer by the launcher
    secret_env: tuple[str, ...]  # credentials among them, hidden from every stored text


TRACKERS = (
    Tracker(
        name="mlflow", label="MLflow", package="mlflow", switch="MLFLOW_TRACKING_URI",
        env_prefix="MLFLOW_",
        secret_env=("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"),
    ),
    Tracker(
        name="wandb", label="Weights & Biases", package="wandb", switch="WANDB_PROJECT",
        env_prefix="WANDB_", secret_env=("WANDB_API_KEY",),
    ),
)  # fmt: skip


class TrackerMissing(RuntimeError):
    """A tracker is configured but its library is not installed."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__(
            f"{tracker.switch} is set, so training runs log to {tracker.label}, but the "
            f"{tracker.package!r} package is not installed in this Python: install it on the "
            f"training workers (pip install {tracker.package}) or unset {tracker.switch}"
        )
        self.tracker = tracker


def trackers_configured(environ: Mapping[str, str]) -> list[Tracker]:
    return [tracker for tracker in TRACKERS if environ.get(tracker.switch, "").strip()]


def trackers_check(environ: Mapping[str, str]) -> list[Tracker]:
    """The configured trackers; raises TrackerMissing for the first one not installed."""
    configured = trackers_configured(environ)
    for tracker in configured:
        if importlib.util.find_spec(tracker.package) is None:
            raise TrackerMissing(tracker)
    return configured


def tracker_env_names(environ: Mapping[str, str]) -> list[str]:
    """The variables of `environ` that configure a tracker (passed on to the trainer)."""
    prefixes = tuple(tracker.env_prefix for tracker in TRACKERS)
    return sorted(name for name in environ if name.startswith(prefixes))


def tracker_secret_env_names() -> frozenset[str]:
    return frozenset(name for tracker in TRACKERS for name in tracker.secret_env)


class MetricSink(Protocol):
    def scalar(self, name: str, value: float, *, step: int) -> None: ...

    def close(self, *, outcome: str) -> None: ...


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class TensorBoardTracker:
    def __init__(self, output_dir: Path, *, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = output_dir / TENSORBOARD_DIR
        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        self._writer.add_text(
            "config", "```\n" + json.dumps(dict(config), indent=1, sort_keys=True) + "\n```"
        )

    def scalar(self, name: str, value: float, *, step: int) -> None:
        self._writer.add_scalar(name, value, global_step=step)

    def close(self, *, outcome: str) -> None:
        self._writer.close()


def mlflow_key(name: str) -> str:
    """A metric name as an MLflow key: its first "/" kept (MLflow groups by it), the others
    made "." (a file store keeps each key as a path, where "val/accuracy" as a file and
    "val/accuracy/relation/above" under it as a folder cannot both exist), and characters
    MLflow refuses made "_"."""
    head, _, rest = name.partition("/")
    return _MLFLOW_KEY.sub("_", f"{head}/{rest.replace('/', '.')}" if rest else head)


class MlflowTracker:
    """A run in the experiment MLFLOW_EXPERIMENT_NAME (mlflow reads it and the tracking URI
    from the environment itself), named after the SpatialPrefs run."""

    def __init__(self, *, run_name: str, config: Mapping[str, Any]) -> None:
        import mlflow

        self._mlflow = mlflow
        mlflow.start_run(run_name=run_name)
        mlflow.log_params({_MLFLOW_KEY.sub("_", k): v for k, v in _flat(config).items()})

    def scalar(self, name: str, value: float, *, step: int) -> None:
        if math.isfinite(value):
            self._mlflow.log_metric(mlflow_key(name), value, step=step)

    def close(self, *, outcome: str) -> None:
        status = {"finished": "FINISHED", "stopped": "KILLED"}.get(outcome, "FAILED")
        self._mlflow.end_run(status=status)


class WandbTracker:
    """A run in WANDB_PROJECT (and WANDB_ENTITY, WANDB_MODE... as wandb reads them)."""

    def __init__(self, *, run_name: str, config: Mapping[str, Any], project: str) -> None:
        import wandb

        self._run = wandb.init(project=project, name=run_name, config=dict(config))

    def scalar(self, name: str, value: float, *, step: int) -> None:
        self._run.log({name: value}, step=step)

    def close(self, *, outcome: str) -> None:
        self._run.finish(exit_code=0 if outcome == "finished" else 1)


def trackers_open(
    output_dir: Path, *, environ: Mapping[str, str], config: Mapping[str, Any]
) -> list[MetricSink]:
    """TensorBoard and the configured trackers, each started. Raises TrackerMissing."""
    configured = trackers_check(environ)
    run_id = environ.get("SPATIALPREFS_RUN_ID")
    run_name = f"{RUN_NAME_PREFIX}{run_id}" if run_id else output_dir.resolve().name
    sinks: list[MetricSink] = [TensorBoardTracker(output_dir, config=config)]
    for tracker in configured:
        if tracker.name == "mlflow":
            sinks.append(MlflowTracker(run_name=run_name, config=config))
        else:
            sinks.append(
                WandbTracker(run_name=run_name, config=config, project=environ[tracker.switch])
            )
    return sinks
