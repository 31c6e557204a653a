"""Executing a run on a training worker: the built-in trainer or an admin-defined launcher, both
as a child process that the worker watches.

`training_run_execute(run_id=...)` (the `training` queue task, or `manage.py train start
--run-now`) claims a queued run, waits for the version's export and downloads it into
`<work>/dataset/<format>/` (with the version's manifest.json), then starts

- built-in: `python -m training_bridge.training.trainer --dataset-dir D --output-dir O --config C`
  (under `python -m torch.distributed.run --standalone --nproc_per_node N` when `devices` > 1);
- a launcher definition (TrainingLauncher, defined by a superuser): its argv template with only
  the fixed placeholders {dataset_dir} {output_dir} {config_file} {run_id} filled in (no shell);
  the run's options reach it through the config file, never through argv.

The child's environment is minimal (`launcher_child_environment`): PATH, LANG/LC_ALL, HOME (the
run's folder), PYTHONUNBUFFERED, the SPATIALPREFS_ variables, and for the built-in trainer its
PYTHONPATH, the thread/GPU variables torch reads and the worker's MLFLOW_* / WANDB_* variables
(its experiment trackers, trainer/tracking.py: a tracker configured on the worker whose library
is missing fails the run before its dataset is fetched); a definition adds exactly what it lists.
The worker's secrets never reach it, and every text stored from the run (log tail, error,
summary, metric names, the stored train.log) has the definition's and the worker's secret
values replaced by REDACTED. A queued run of the removed free-form command launcher fails.

While the child runs, the worker tails `<output_dir>/metrics.jsonl` into TrainingMetric rows,
keeps the run's heartbeat, step and log tail fresh, and checks for a cancel request (then it
creates the cancel file, sends SIGTERM, and SIGKILL after a grace period). The child dies with
the worker (PR_SET_PDEATHSIG), so a crashed worker leaves no orphan; the stale-heartbeat sweep
marks its run failed. On exit 0 every file of the output folder (and the log) goes to the
default storage under `training/runs/<id>/` and the run succeeds; the caller's `on_succeeded`
(the reward model's registration, training_bridge/orchestration.py) runs in that transaction.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from training_bridge.datasets.services.artifacts import artifact_open, artifact_put_file
from training_bridge.models import DatasetExport, TrainingMetric, TrainingRun
from training_bridge.training.services.launcher_definitions import (
    LauncherDefinition,
    argv_fill,
    secret_env_names,
    training_launcher_check,
)
from training_bridge.training.services.training import heartbeat_seconds, training_run_prefix
from training_bridge.training.trainer.events import METRICS_FILE, lines_since
from training_bridge.training.trainer.tracking import (
    TrackerMissing,
    tracker_env_names,
    tracker_secret_env_names,
    trackers_check,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
LOG_TAIL_CHARS = 8000
CANCEL_GRACE_SECONDS = 30
EXPORT_WAIT_SECONDS = 6 * 3600
REDACTED = "[REDACTED]"
# Shorter values ("1", "cuda", "en_US") are settings rather than secrets, and hiding every
# occurrence of them would make the log unreadable.
REDACT_MIN_CHARS = 6
# Every child gets these from the worker when set there.
BASE_PASSTHROUGH = ("PATH", "LANG", "LC_ALL")
# What torch, CUDA and NCCL read; the built-in trainer gets these from the worker when set.
TORCH_PASSTHROUGH = (
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TMPDIR", "HF_HOME", "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE", "TORCH_HOME", "NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE",
)  # fmt: skip
_PR_SET_PDEATHSIG = 1


class RunLost(Exception):
    """The run is no longer this execution's (swept as failed, or cancelled while queued)."""


class RunCancelled(Exception):
    pass


class Child(Protocol):
    """What `_Execution.watch` follows: the trainer as a local process (`_Process`) or as a
    Kubernetes Job (training/services/kubernetes/jobs.py)."""

    reason: str  # what ended it, besides its exit status ("" when nothing more is known)

    def poll(self) -> int | None: ...  # its exit status once it ended

    def stop(self) -> None: ...  # cancel: let it stop at its next step check

    def kill(self) -> None: ...  # past the grace, or the worker gives up on it


class _Process:
    reason = ""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self) -> None:
        _signal(self.popen, signal.SIGTERM)

    def kill(self) -> None:
        _terminate(self.popen, grace=0)


def builtin_trainer_config(run_config: dict[str, Any]) -> dict[str, Any]:
    """The built-in trainer's config file: the run's config less what only the platform reads
    (its launcher, the model's name, a Kubernetes run's pod resources)."""
    drop = ("launcher", "model_name", "kubernetes")
    return {k: v for k, v in run_config.items() if k not in drop}


def trainer_argv(
    *,
    python: str,
    devices: int,
    dataset_dir: str,
    output_dir: str,
    config_file: str,
    cancel_file: str | None,
) -> list[str]:
    """How the built-in trainer is started, on the worker and in a Kubernetes Job alike: under
    torchrun (`python -m torch.distributed.run`), one process per device, when devices > 1."""
    trainer = [
        "-m", "training_bridge.training.trainer",
        "--dataset-dir", dataset_dir, "--output-dir", output_dir, "--config", config_file,
    ]  # fmt: skip
    if cancel_file is not None:
        trainer += ["--cancel-file", cancel_file]
    if devices > 1:
        return [
            python, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(devices), *trainer,
        ]  # fmt: skip
    return [python, *trainer]


def _die_with_parent() -> None:
    """In the child between fork and exec: the kernel kills it when the worker dies (a trainer
    left running would hold its GPU and write to a run already swept as failed). Only this
    child's setting, never the worker's; Python has no prctl of its own, hence ctypes; tested
    by tests/training/test_worker_crash.py."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def launcher_child_environment(
    *,
    worker_env: Mapping[str, str],
    run_id: int,
    work: Path,
    dataset_dir: Path,
    output_dir: Path,
    config_file: Path,
    cancel_file: Path,
    definition: LauncherDefinition | None,
) -> dict[str, str]:
    """The whole environment of a run's child: built here from nothing, never a copy of the
    worker's (which holds SECRET_KEY, DATABASE_URL, the broker URL, storage keys)."""
    secrets = secret_env_names()
    passthrough = [*BASE_PASSTHROUGH]
    if definition is None:
        passthrough += [*TORCH_PASSTHROUGH, *tracker_env_names(worker_env)]
    env = {
        name: worker_env[name] for name in passthrough if name in worker_env and name not in secrets
    }
    env.setdefault("PATH", os.defpath)
    if "LANG" not in env and "LC_ALL" not in env:
        env["LANG"] = "C.UTF-8"
    env.update(
        HOME=str(work),
        PYTHONUNBUFFERED="1",
        SPATIALPREFS_RUN_ID=str(run_id),
        SPATIALPREFS_DATASET_DIR=str(dataset_dir),
        SPATIALPREFS_OUTPUT_DIR=str(output_dir),
        SPATIALPREFS_CONFIG_FILE=str(config_file),
        SPATIALPREFS_CANCEL_FILE=str(cancel_file),
    )
    if definition is None:
        # `python -m training_bridge.training.trainer` imports this checkout
        env["PYTHONPATH"] = str(Path(settings.BASE_DIR))
        return env
    for name in definition.passthrough_env:
        if name in worker_env:
            env[name] = worker_env[name]
    env.update(definition.environment)
    return env


def launcher_hidden_values(
    *, worker_env: Mapping[str, str], definition: LauncherDefinition | None
) -> tuple[str, ...]:
    """The values no stored text of a run may show: the definition's environment (given or
    passed through) and the worker's secrets (a command could read its parent's), longest
    first so a value that contains another is hidden whole."""
    values = {str(settings.SECRET_KEY)}
    values.update(worker_env[name] for name in secret_env_names() if name in worker_env)
    if definition is None:
        values.update(worker_env[n] for n in tracker_secret_env_names() if n in worker_env)
    else:
        values.update(definition.environment.values())
        values.update(worker_env[n] for n in definition.passthrough_env if n in worker_env)
    return tuple(sorted((v for v in values if len(v) >= REDACT_MIN_CHARS), key=len, reverse=True))


class _Execution:
    def __init__(
        self, run: TrainingRun, token: uuid.UUID, on_succeeded: Callable[[int], object] | None
    ) -> None:
        self.run = run
        self.token = token
        self.on_succeeded = on_succeeded
        self.definition: LauncherDefinition | None = None
        self.hidden = launcher_hidden_values(worker_env=os.environ, definition=None)
        self.owned = TrainingRun.objects.filter(
            pk=run.pk, run_token=token, status=TrainingRun.Status.RUNNING
        )
        self.last_beat = 0.0
        self.progress: dict[str, int] = {}
        self.work = Path(tempfile.mkdtemp(prefix=f"spatialprefs-run-{run.pk}-", dir=_work_root()))
        self.dataset_dir = self.work / "dataset"
        self.output_dir = self.work / "output"
        self.log_path = self.work / "train.log"
        self.cancel_file = self.work / "cancel"
        self.config_file = self.work / "config.json"
        self._metrics_offset = 0
        self._last_values: dict[str, float] = {}
        self.child_reason = ""

    # -- bookkeeping -----------------------------------------------------------------------

    def beat(self, **fields: Any) -> None:
        """Heartbeat (and progress, and `fields`) at most every heartbeat_seconds unless
        fields are given; raises RunLost or RunCancelled."""
        now = time.monotonic()
        if now - self.last_beat < heartbeat_seconds() and not fields:
            return
        self.last_beat = now
        updated = self.owned.update(heartbeat_at=timezone.now(), **self.progress, **fields)
        if not updated:
            raise RunLost(self.run.pk)
        if TrainingRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
            raise RunCancelled(self.run.pk)

    def redact(self, text: str) -> str:
        for value in self.hidden:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            # read a little more so a value cut at the window's edge is still found whole
            longest = max((len(v.encode()) for v in self.hidden), default=0)
            handle.seek(max(0, size - LOG_TAIL_CHARS - longest))
            text = self.redact(handle.read().decode("utf-8", errors="replace"))
        return text[-LOG_TAIL_CHARS:]

    def note(self, message: str) -> None:
        line = f"{timezone.now().isoformat(timespec='seconds')} launcher {message}"
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(self.redact(line) + "\n")

    def metrics_read(self) -> int:
        """New complete lines of the metrics file into TrainingMetric rows; returns how many."""
        self._metrics_offset, lines = lines_since(
            self.output_dir / METRICS_FILE, self._metrics_offset
        )
        points: list[TrainingMetric] = []
        for raw in lines:
            point = _metric_line(raw)
            if point is None:
                continue
            if "progress" in point:
                self.progress.update(point["progress"])
                continue
            point["name"] = self.redact(point["name"])
            self._last_values[point["name"]] = point["value"]
            points.append(TrainingMetric(run_id=self.run.pk, **point))
        if points:
            TrainingMetric.objects.bulk_create(points, ignore_conflicts=True, batch_size=1000)
            if "step" not in self.progress:
                self.progress["step"] = max(p.step for p in points)
        return len(points)

    # -- stages ----------------------------------------------------------------------------

    def launcher_prepare(self) -> None:
        """Refuse what may no longer run, check the definition again as it is now (disabled,
        or a name the settings marked secret since it was saved), fix what the child sees."""
        run = self.run
        if "command" in run.config or run.launcher == TrainingRun.Launcher.EXTERNAL:
            raise DomainError(
                "this run's config carries a raw command, which no longer runs: ask an admin "
                "to define a launcher for it and start a new run that picks it by name",
                field="config.command",
            )
        if run.launcher == TrainingRun.Launcher.KUBERNETES:
            from training_bridge.training.services.kubernetes.manifests import job_settings

            job_settings()  # a misconfigured cluster fails the run here, naming the setting
        elif run.launcher != TrainingRun.Launcher.BUILTIN:
            launcher = run.launcher_definition
            if launcher is None:
                raise DomainError(
                    f"the run names launcher {run.launcher!r} but no definition",
                    field="config.launcher",
                )
            if not launcher.enabled:
                raise DomainError(
                    f"launcher {launcher.name!r} was disabled after the run was queued",
                    field="config.launcher",
                )
            try:
                self.definition = training_launcher_check(launcher=launcher)
            except DomainError as exc:
                raise DomainError(
                    f"launcher {launcher.name!r} is not valid any more ({exc}); ask an admin "
                    "to fix it",
                    field="config.launcher",
                ) from None
        else:
            try:
                trackers_check(os.environ)
            except TrackerMissing as exc:
                raise DomainError(str(exc), field=exc.tracker.switch) from None
        self.hidden = launcher_hidden_values(worker_env=os.environ, definition=self.definition)

    def export_ready(self) -> DatasetExport:
        """The version's export in the config's format, once done (waiting for it)."""
        fmt = self.run.config.get("dataset_format", "parquet")
        deadline = time.monotonic() + EXPORT_WAIT_SECONDS
        noted = False
        while True:
            export = DatasetExport.objects.filter(
                version_id=self.run.dataset_version_id, format=fmt, include_images=True
            ).first()
            if export is not None and export.status == DatasetExport.Status.DONE:
                break
            if export is None or export.status == DatasetExport.Status.FAILED:
                reason = export.error if export is not None else "it was never requested"
                raise DomainError(
                    f"the {fmt} export of the dataset version is not available: {reason}",
                    field="dataset_version",
                )
            if time.monotonic() > deadline:
                raise DomainError(
                    f"the {fmt} export did not finish in time", field="dataset_version"
                )
            if not noted:
                self.note(f"waiting for the {fmt} export ({export.status})")
                noted = True
            self.beat()
            time.sleep(1.0)
        return export

    def dataset_fetch(self) -> None:
        """Wait for the version's export, then download it for the local child."""
        export = self.export_ready()
        fmt = export.format
        target = self.dataset_dir / fmt
        target.mkdir(parents=True, exist_ok=True)
        for artifact in export.artifacts:
            with (
                artifact_open(key=artifact["key"]) as source,
                (target / artifact["name"]).open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink, 1 << 20)
            self.beat()
        manifest = self.run.dataset_version.manifest or {}
        (self.dataset_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        self.note(f"dataset {fmt}: {len(export.artifacts)} files in {target}")

    def command(self) -> list[str]:
        config = self.run.config
        if self.definition is not None:
            return argv_fill(
                self.definition.argv,
                {
                    "dataset_dir": str(self.dataset_dir),
                    "output_dir": str(self.output_dir),
                    "config_file": str(self.config_file),
                    "run_id": str(self.run.pk),
                },
            )
        return trainer_argv(
            python=sys.executable,
            devices=config.get("devices", 1),
            dataset_dir=str(self.dataset_dir),
            output_dir=str(self.output_dir),
            config_file=str(self.config_file),
            cancel_file=str(self.cancel_file),
        )

    def trainer_config(self) -> dict[str, Any]:
        """What the child reads from its config file."""
        if self.definition is not None:
            return self.run.config  # launcher, model_name, dataset_format, options
        return builtin_trainer_config(self.run.config)

    def child_run(self) -> int:
        """Run the trainer or the command; watch it until it exits. Returns its status."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(self.trainer_config(), indent=1, sort_keys=True))
        argv = self.command()
        self.note("starting: " + shlex.join(argv))  # the argv only, never the environment
        env = launcher_child_environment(
            worker_env=os.environ,
            run_id=self.run.pk,
            work=self.work,
            dataset_dir=self.dataset_dir,
            output_dir=self.output_dir,
            config_file=self.config_file,
            cancel_file=self.cancel_file,
            definition=self.definition,
        )
        with self.log_path.open("ab") as log_file:
            child = subprocess.Popen(  # the definition's argv or the trainer's, no shell
                argv,
                cwd=str(self.work),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self.watch(_Process(child))

    def job_run(self) -> int:
        """The built-in trainer as a Kubernetes Job: the pod fetches the export and sends its
        output through presigned URLs; its log comes back into this run's log and metrics
        file, watched as a local child is; on success its output is unpacked here."""
        from training_bridge.training.services.kubernetes.jobs import kubernetes_job_submit

        export = self.export_ready()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        job = kubernetes_job_submit(
            run=self.run,
            token=self.token,
            export=export,
            log_path=self.log_path,
            metrics_path=self.output_dir / METRICS_FILE,
            note=self.note,
        )
        code = self.watch(job)
        if code == 0:
            self.note(f"job {job.name} finished: fetching its output")
            job.output_fetch(self.output_dir, work=self.work)
            self._metrics_offset = 0  # the pod's own metrics file, whole (points are unique)
        return code

    def watch(self, child: Child) -> int:
        """Follow a child until it ends, keeping the run's metrics, heartbeat and log tail
        fresh and passing a cancel request on; the child is killed if this raises."""
        try:
            return self._watch(child)
        except BaseException:
            child.kill()
            raise
        finally:
            self.child_reason = child.reason

    def _watch(self, child: Child) -> int:
        cancel_at: float | None = None
        while True:
            code = child.poll()
            self.metrics_read()
            if code is not None:
                return code
            if cancel_at is None:
                try:
                    if self._due():
                        self.beat(log_tail=self.log_tail())
                except RunCancelled:
                    self.note("cancel requested: stopping the trainer")
                    self.cancel_file.touch()
                    child.stop()
                    cancel_at = time.monotonic()
            elif time.monotonic() - cancel_at > CANCEL_GRACE_SECONDS:
                child.kill()
            time.sleep(POLL_SECONDS)

    def _due(self) -> bool:
        return time.monotonic() - self.last_beat >= heartbeat_seconds()

    def log_redacted(self) -> Path:
        """The log as it is stored: line by line with the hidden values replaced (they are
        one line each)."""
        target = self.work / "train.redacted.log"
        with (
            self.log_path.open(encoding="utf-8", errors="replace", newline="") as source,
            target.open("w", encoding="utf-8", newline="") as sink,
        ):
            for line in source:
                sink.write(self.redact(line))
        return target

    def artifacts_store(self) -> list[dict[str, Any]]:
        prefix = training_run_prefix(run_id=self.run.pk)
        files = sorted(p for p in self.output_dir.rglob("*") if p.is_file())
        files.append(self.log_path)
        stored = []
        for path in files:
            name = (
                path.name if path == self.log_path else path.relative_to(self.output_dir).as_posix()
            )
            if path == self.log_path:
                path = self.log_redacted()
            artifact = artifact_put_file(key=f"{prefix}/{name}", path=path)
            stored.append({"name": name, **artifact})
            self.beat()
        return stored

    def summary(self) -> dict[str, Any]:
        path = self.output_dir / "summary.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    return data
            except json.JSONDecodeError:
                pass
        return {name: value for name, value in sorted(self._last_values.items())}

    def cancelled(self) -> TrainingRun:
        self.metrics_read()
        self.note("cancelled")
        self.owned.update(
            status=TrainingRun.Status.CANCELLED,
            finished_at=timezone.now(),
            log_tail=self.log_tail(),
            run_token=None,
            **self.progress,
        )
        log.info("training.run.cancelled run=%s", self.run.pk)
        return TrainingRun.objects.get(pk=self.run.pk)

    def failed(self, message: str) -> TrainingRun:
        message = self.redact(message)
        self.note(f"failed: {message}")
        self.owned.update(
            status=TrainingRun.Status.FAILED,
            error=message[:4000],
            finished_at=timezone.now(),
            log_tail=self.log_tail(),
            run_token=None,
            **self.progress,
        )
        log.warning("training.run.failed run=%s error=%s", self.run.pk, message[:300])
        return TrainingRun.objects.get(pk=self.run.pk)

    def succeeded(self) -> TrainingRun:
        self.note("finished: storing the artifacts")
        artifacts = self.artifacts_store()
        summary = _json_safe(self.summary(), self.redact)
        with transaction.atomic():
            done = self.owned.update(
                status=TrainingRun.Status.SUCCEEDED,
                summary=summary,
                artifacts=artifacts,
                finished_at=timezone.now(),
                log_tail=self.log_tail(),
                run_token=None,
                **self.progress,
            )
            if not done:
                raise RunLost(self.run.pk)
            if self.on_succeeded is not None:
                self.on_succeeded(self.run.pk)
        log.info("training.run.succeeded run=%s summary=%s", self.run.pk, summary)
        return TrainingRun.objects.get(pk=self.run.pk)


def _work_root() -> str | None:
    root = getattr(settings, "TRAINING_WORK_DIR", None)
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    return root


def _json_safe(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _json_safe(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v, redact) for v in value]
    return value


def _metric_line(raw: bytes) -> dict[str, Any] | None:
    """A metrics JSONL line as TrainingMetric fields or {"progress": {...}}; None if unusable."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("progress"), dict):
        fields = {}
        for key in ("step", "total_steps", "epoch"):
            value = data["progress"].get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                fields[key] = value
        return {"progress": fields}
    name, step, value = data.get("name"), data.get("step"), data.get("value")
    epoch = data.get("epoch")
    if not isinstance(name, str) or not name or len(name) > 128:
        return None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        epoch = None
    return {"name": name, "step": step, "epoch": epoch, "value": float(value)}


def _signal(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def _terminate(child: subprocess.Popen, *, grace: float) -> None:
    if child.poll() is not None:
        return
    _signal(child, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal(child, signal.SIGKILL)
    child.wait()


def _claim(run_id: int, worker: str) -> tuple[TrainingRun | None, uuid.UUID | None]:
    token = uuid.uuid4()
    with transaction.atomic():
        run = (
            TrainingRun.objects.select_for_update(of=("self",))
            .select_related("dataset_version__dataset", "launcher_definition")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status != TrainingRun.Status.QUEUED:
            return run, None
        now = timezone.now()
        run.status = TrainingRun.Status.RUNNING
        run.run_token = token
        run.started_at = now
        run.heartbeat_at = now
        run.worker = worker
        run.error = ""
        run.save(
            update_fields=["status", "run_token", "started_at", "heartbeat_at", "worker", "error"]
        )
    return run, token


def training_run_execute(
    *,
    run_id: int,
    worker: str = "",
    on_succeeded: Callable[[int], object] | None = None,
) -> TrainingRun | None:
    """Execute a queued run in this process. The `training` task and `train start --run-now`
    call it through training_bridge/orchestration.py, whose `on_succeeded` registers the run's
    reward model: it runs inside the transaction that marks the run succeeded, and an error
    there ends the run failed instead.

    A run that is not queued (cancelled meanwhile, or taken by another worker) is left alone.
    """
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    run, token = _claim(run_id, worker)
    if token is None:
        log.info("training.run.skipped run=%s status=%s", run_id, run.status if run else None)
        return run
    log.info("training.run.started run=%s worker=%s", run.pk, worker)
    execution = _Execution(run, token, on_succeeded)
    try:
        execution.note(f"run {run.pk} on {run.dataset_version} by {worker}")
        execution.launcher_prepare()
        if run.launcher == TrainingRun.Launcher.KUBERNETES:
            code = execution.job_run()
        else:
            execution.dataset_fetch()
            code = execution.child_run()
        execution.metrics_read()
        if TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            return execution.cancelled()
        if code != 0:
            message = _exit_message(code, execution.log_tail())
            if execution.child_reason:
                message = f"{execution.child_reason}; {message}"
            return execution.failed(message)
        return execution.succeeded()
    except RunCancelled:
        return execution.cancelled()
    except RunLost:
        log.warning("training.run.lost run=%s", run.pk)
        return TrainingRun.objects.filter(pk=run.pk).first()
    except DomainError as exc:
        return execution.failed(str(exc))
    except Exception as exc:  # noqa: BLE001 - a run must end failed, never stuck running
        log.exception("training.run.crashed run=%s", run.pk)
        return execution.failed(f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(execution.work, ignore_errors=True)


_LAUNCHER_NOTE = re.compile(r"^\S+ launcher ")
_LOGGED_ERROR = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) \S+ (.*)$")


def _exit_message(code: int, tail: str) -> str:
    """The exit status and the last error line of the output (a logged error without its
    time and logger, or a traceback's last line)."""
    how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    lines = [line for line in lines if not _LAUNCHER_NOTE.match(line)]
    errors = [line for line in lines if " ERROR " in line or "Error" in line]
    detail = (errors or lines or ["(no output)"])[-1]
    logged = _LOGGED_ERROR.match(detail)
    return f"the trainer {how}: {(logged.group(1) if logged else detail)[:1000]}"
