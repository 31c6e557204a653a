"""Executing a run on a training worker: the built-in trainer or an external command, both as
a child process that the worker watches.

`training_run_execute(run_id=...)` (the `training` queue task, or `manage.py train start
--run-now`) claims a queued run, waits for the version's export and downloads it into
`<work>/dataset/<format>/` (with the version's manifest.json), then starts

- built-in: `python -m training_bridge.trainer --dataset-dir D --output-dir O --config C`
  (under `python -m torch.distributed.run --standalone --nproc_per_node N` when `devices` > 1);
- external: the config's command template, its placeholders {dataset_dir} {output_dir}
  {run_id} {config_file} filled in (no shell; arguments split like a POSIX shell would).

While the child runs, the worker tails `<output_dir>/metrics.jsonl` into TrainingMetric rows,
keeps the run's heartbeat, step and log tail fresh, and checks for a cancel request (then it
creates the cancel file, sends SIGTERM, and SIGKILL after a grace period). The child dies with
the worker (PR_SET_PDEATHSIG), so a crashed worker leaves no orphan; the stale-heartbeat sweep
marks its run failed. On exit 0 every file of the output folder (and the log) goes to the
default storage under `training/runs/<id>/`, the run succeeds and registers its reward model.
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
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from training_bridge.models import DatasetExport, TrainingMetric, TrainingRun
from training_bridge.services.artifacts import artifact_open, artifact_put_file
from training_bridge.services.training import (
    heartbeat_seconds,
    reward_model_register,
    training_run_prefix,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
LOG_TAIL_CHARS = 8000
CANCEL_GRACE_SECONDS = 30
EXPORT_WAIT_SECONDS = 6 * 3600
METRICS_FILE = "metrics.jsonl"
_PR_SET_PDEATHSIG = 1


class RunLost(Exception):
    """The run is no longer this execution's (swept as failed, or cancelled while queued)."""


class RunCancelled(Exception):
    pass


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Execution:
    def __init__(self, run: TrainingRun, token: uuid.UUID) -> None:
        self.run = run
        self.token = token
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

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_CHARS))
            return handle.read().decode("utf-8", errors="replace")

    def note(self, message: str) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(f"{timezone.now().isoformat(timespec='seconds')} launcher {message}\n")

    def metrics_read(self) -> int:
        """New complete lines of the metrics file into TrainingMetric rows; returns how many."""
        path = self.output_dir / METRICS_FILE
        if not path.exists():
            return 0
        with path.open("rb") as handle:
            handle.seek(self._metrics_offset)
            data = handle.read()
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        self._metrics_offset += end + 1
        points: list[TrainingMetric] = []
        for raw in data[:end].splitlines():
            point = _metric_line(raw)
            if point is None:
                continue
            if "progress" in point:
                self.progress.update(point["progress"])
                continue
            self._last_values[point["name"]] = point["value"]
            points.append(TrainingMetric(run_id=self.run.pk, **point))
        if points:
            TrainingMetric.objects.bulk_create(points, ignore_conflicts=True, batch_size=1000)
            if "step" not in self.progress:
                self.progress["step"] = max(p.step for p in points)
        return len(points)

    # -- stages ----------------------------------------------------------------------------

    def dataset_fetch(self) -> None:
        """Wait for the version's export in the config's format, then download it."""
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
        if self.run.launcher == TrainingRun.Launcher.EXTERNAL:
            values = {
                "{dataset_dir}": str(self.dataset_dir),
                "{output_dir}": str(self.output_dir),
                "{run_id}": str(self.run.pk),
                "{config_file}": str(self.config_file),
            }
            parts = []
            for part in shlex.split(config["command"]):
                for placeholder, value in values.items():
                    part = part.replace(placeholder, value)
                parts.append(part)
            return parts
        trainer = [
            "-m", "training_bridge.trainer",
            "--dataset-dir", str(self.dataset_dir), "--output-dir", str(self.output_dir),
            "--config", str(self.config_file), "--cancel-file", str(self.cancel_file),
        ]  # fmt: skip
        if config.get("devices", 1) > 1:
            return [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(config["devices"]), *trainer,
            ]  # fmt: skip
        return [sys.executable, *trainer]

    def child_run(self) -> int:
        """Run the trainer or the command; watch it until it exits. Returns its status."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        trainer_keys = {
            k: v
            for k, v in self.run.config.items()
            if k not in ("launcher", "command", "model_name")
        }
        config = (
            self.run.config if self.run.launcher == TrainingRun.Launcher.EXTERNAL else trainer_keys
        )
        self.config_file.write_text(json.dumps(config, indent=1, sort_keys=True))
        argv = self.command()
        self.note("starting: " + shlex.join(argv))
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SPATIALPREFS_RUN_ID": str(self.run.pk),
            "SPATIALPREFS_DATASET_DIR": str(self.dataset_dir),
            "SPATIALPREFS_OUTPUT_DIR": str(self.output_dir),
            "SPATIALPREFS_CANCEL_FILE": str(self.cancel_file),
        }
        root = Path(settings.BASE_DIR)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        with self.log_path.open("ab") as log_file:
            child = subprocess.Popen(  # the run's own argv, no shell
                argv,
                cwd=str(root),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            return self._watch(child)
        except BaseException:
            _terminate(child, grace=0)
            raise

    def _watch(self, child: subprocess.Popen) -> int:
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
                    _signal(child, signal.SIGTERM)
                    cancel_at = time.monotonic()
            elif time.monotonic() - cancel_at > CANCEL_GRACE_SECONDS:
                _signal(child, signal.SIGKILL)
            time.sleep(POLL_SECONDS)

    def _due(self) -> bool:
        return time.monotonic() - self.last_beat >= heartbeat_seconds()

    def artifacts_store(self) -> list[dict[str, Any]]:
        prefix = training_run_prefix(run_id=self.run.pk)
        files = sorted(p for p in self.output_dir.rglob("*") if p.is_file())
        files.append(self.log_path)
        stored = []
        for path in files:
            name = (
                path.name if path == self.log_path else path.relative_to(self.output_dir).as_posix()
            )
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
        summary = _json_safe(self.summary())
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
            reward_model_register(run_id=self.run.pk)
        log.info("training.run.succeeded run=%s summary=%s", self.run.pk, summary)
        return TrainingRun.objects.get(pk=self.run.pk)


def _work_root() -> str | None:
    root = getattr(settings, "TRAINING_WORK_DIR", None)
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    return root


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
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
            TrainingRun.objects.select_for_update()
            .select_related("dataset_version__dataset")
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


def training_run_execute(*, run_id: int, worker: str = "") -> TrainingRun | None:
    """Execute a queued run in this process (the `training` task and `train start --run-now`).

    A run that is not queued (cancelled meanwhile, or taken by another worker) is left alone.
    """
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    run, token = _claim(run_id, worker)
    if token is None:
        log.info("training.run.skipped run=%s status=%s", run_id, run.status if run else None)
        return run
    log.info("training.run.started run=%s worker=%s", run.pk, worker)
    execution = _Execution(run, token)
    try:
        execution.note(f"run {run.pk} on {run.dataset_version} by {worker}")
        execution.dataset_fetch()
        code = execution.child_run()
        execution.metrics_read()
        if TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            return execution.cancelled()
        if code != 0:
            return execution.failed(_exit_message(code, execution.log_tail()))
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
