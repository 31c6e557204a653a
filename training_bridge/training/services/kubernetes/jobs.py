"""Submitting a run's Job and following it for the launcher (`_Execution.job_run`).

The dataset and the artifacts travel through the platform's S3 bucket with presigned URLs the
worker makes for this execution (the pod holds no storage credentials): a GET per file of the
version's export, and one PUT for the output folder as a gzipped tar under
`training/transfer/`, which the worker unpacks into the run's output folder, then deletes; the
run's artifacts are then stored from there by the same code as a local run's. The URLs expire
with the Job's deadline (at most a week, S3's limit for presigned URLs).

While the Job runs, a thread follows its pod's log (timestamps on, resumed after a dropped
connection without repeating lines): lines behind trainer/job.py's METRIC_MARKER are appended
to the run's local metrics file, every other line to its train.log, and the launcher's usual
watch loop reads both (metrics, heartbeat, log tail, cancel). A cancel deletes the Job (its pod
gets SIGTERM, then SIGKILL after the grace period); so does any error of the worker. A Job left
by a worker that died (its run swept as failed) is deleted by the next submission.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3

from config.errors import DomainError
from config.stored_files import storage_is_s3
from training_bridge.datasets.services.artifacts import artifact_open, artifact_storage
from training_bridge.models import DatasetExport, TrainingRun
from training_bridge.training.services.kubernetes.api import (
    KubernetesApi,
    KubernetesError,
    connection_load,
)
from training_bridge.training.services.kubernetes.manifests import (
    CONTAINER,
    MANAGED_BY,
    RUN_ID_LABEL,
    TOKEN_ANNOTATION,
    JobSettings,
    job_render,
    job_settings,
    secret_render,
)
from training_bridge.training.trainer.job import METRIC_MARKER

log = logging.getLogger(__name__)

STATUS_SECONDS = 5.0  # how often the Job's status is read
PENDING_SECONDS = 2.0  # how often a pod not started yet is looked at
RETRY_SECONDS = 5.0
LOG_DRAIN_SECONDS = 30.0  # for the last lines once the Job ended
# How long the API server may be unreachable (a control-plane upgrade) before the run fails.
API_PATIENCE_SECONDS = 300.0
URL_MARGIN_SECONDS = 3600
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_MARKER = METRIC_MARKER.encode()


class LogFollower:
    """A pod's log, as the API sends it with timestamps=true, sorted into the run's files:
    metric lines (behind METRIC_MARKER) appended to the metrics file, the others to the log.
    Lines come whole in order; a line at or before the last one seen is a repeat after a
    reconnect (`since`) and is skipped."""

    def __init__(self, *, log_path: Path, metrics_path: Path) -> None:
        self.log_path = log_path
        self.metrics_path = metrics_path
        self.last_time = b""  # RFC 3339 with nanoseconds: ordered as bytes
        self._rest = b""

    def reconnect(self) -> None:
        """A new stream: a line cut by the old one comes again whole (it is not seen yet)."""
        self._rest = b""

    def since(self) -> str | None:
        """sinceTime for a reconnect (whole seconds: the API's precision)."""
        return self.last_time[:19].decode() + "Z" if self.last_time else None

    def feed(self, chunk: bytes) -> int:
        """Sort the complete lines of the stream so far; returns how many metric lines."""
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return self._write(lines)

    def close(self) -> int:
        rest, self._rest = self._rest, b""
        return self._write([rest]) if rest else 0

    def _write(self, lines: list[bytes]) -> int:
        logged, metrics = [], []
        for line in lines:
            stamp, _, text = line.rstrip(b"\r").partition(b" ")
            if stamp <= self.last_time:
                continue
            self.last_time = stamp
            at = text.find(_MARKER)
            if at >= 0:
                metrics.append(text[at + len(_MARKER) :] + b"\n")
            else:
                logged.append(text + b"\n")
        if logged:
            with self.log_path.open("ab") as handle:
                handle.writelines(logged)
        if metrics:
            with self.metrics_path.open("ab") as handle:
                handle.writelines(metrics)
        return len(metrics)


class KubernetesJob:
    """A submitted Job as the launcher's `Child`: poll, stop (cancel), kill."""

    def __init__(
        self,
        *,
        api: KubernetesApi,
        namespace: str,
        name: str,
        follower: LogFollower,
        output_key: str,
        note: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.follower = follower
        self.output_key = output_key
        self.note = note
        self.clock = clock
        self.reason = ""
        self._code: int | None = None
        self._checked = -STATUS_SECONDS
        self._failing_since: float | None = None
        self._deleted = False
        self._done = threading.Event()
        self._ending = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"log-{name}", daemon=True)

    # -- the log, on its own thread (files only, no database) ------------------------------

    def start(self) -> None:
        self._thread.start()

    def _pod(self) -> dict[str, Any] | None:
        pods = self.api.pods_list(self.namespace, f"batch.kubernetes.io/job-name={self.name}")
        return max(pods, key=lambda p: p["metadata"]["creationTimestamp"], default=None)

    def _follow(self) -> None:
        waiting_noted = errors_noted = False
        while not self._done.is_set():
            try:
                pod = self._pod()
                state = _container_state(pod)
                if pod is None or not ({"running", "terminated"} & set(state)):
                    if self._ending.is_set():
                        return  # the Job ended before its container started
                    message = _pending_message(pod)
                    if message and not waiting_noted:
                        self.note(f"job {self.name} waits: {message}")
                        waiting_noted = True
                    self._done.wait(PENDING_SECONDS)
                    continue
                params: dict[str, Any] = {"container": CONTAINER, "timestamps": "true"}
                if self.follower.since():
                    params["sinceTime"] = self.follower.since()
                self.follower.reconnect()
                for chunk in self.api.log_stream(self.namespace, pod["metadata"]["name"], params):
                    self.follower.feed(chunk)
                    if self._done.is_set():
                        return
                if "terminated" in _container_state(self._pod()):
                    self.follower.close()
                    return
            except (KubernetesError, urllib3.exceptions.HTTPError, OSError) as exc:
                if not errors_noted:
                    self.note(f"job {self.name}: following the log: {exc} (retrying)")
                    errors_noted = True
                self._done.wait(RETRY_SECONDS)

    # -- the Child protocol, on the launcher's thread --------------------------------------

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        if self.clock() - self._checked < STATUS_SECONDS:
            return None
        self._checked = self.clock()
        try:
            job = self.api.job_get(self.namespace, self.name)
        except KubernetesError as exc:
            if exc.status == 404:
                self.reason = f"the Kubernetes Job {self.name} was deleted"
                return self._end(-signal.SIGTERM)
            if exc.status < 500 and exc.status != 429:
                raise
            return self._unreachable(exc)
        except urllib3.exceptions.HTTPError as exc:
            return self._unreachable(exc)
        self._failing_since = None
        if not _finished(job):
            return None
        code, self.reason = job_outcome(job, self._pod())
        return self._end(code)

    def _unreachable(self, exc: Exception) -> None:
        """The Job's status cannot be read for now: the run goes on (its pod does) unless
        that lasts past API_PATIENCE_SECONDS."""
        now = self.clock()
        if self._failing_since is None:
            self._failing_since = now
            self.note(f"job {self.name}: the API server does not answer: {exc} (retrying)")
        if now - self._failing_since > API_PATIENCE_SECONDS:
            raise exc

    def _end(self, code: int) -> int:
        self._ending.set()
        if self._thread.is_alive():
            self._thread.join(LOG_DRAIN_SECONDS)
        self._done.set()
        self._code = code
        return code

    def stop(self) -> None:
        self._delete(grace_seconds=None)

    def kill(self) -> None:
        self._done.set()
        if not self._deleted:
            try:
                self._delete(grace_seconds=0)
            except (KubernetesError, urllib3.exceptions.HTTPError) as exc:
                log.warning("training.kubernetes.delete_failed job=%s error=%s", self.name, exc)

    def _delete(self, *, grace_seconds: int | None) -> None:
        self.api.job_delete(self.namespace, self.name, grace_seconds=grace_seconds)
        self._deleted = grace_seconds == 0 or self._deleted
        log.info("training.kubernetes.job_deleted job=%s grace=%s", self.name, grace_seconds)

    # -- the output -------------------------------------------------------------------------

    def output_fetch(self, output_dir: Path, *, work: Path) -> None:
        if not output_fetch(key=self.output_key, output_dir=output_dir, work=work):
            raise DomainError(
                f"the Kubernetes Job {self.name} succeeded but sent no output", field="status"
            )


def output_fetch(*, key: str, output_dir: Path, work: Path) -> bool:
    """A pod's output folder, sent as a gzipped tar under `key`, unpacked into output_dir and
    the transfer file deleted; False when there is none."""
    storage = artifact_storage()
    if not storage.exists(key):
        return False
    archive = work / "output.tar.gz"
    with artifact_open(key=key) as source, archive.open("wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(output_dir, filter="data")  # no links out, no absolute paths
    archive.unlink()
    storage.delete(key)
    return True


def _conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }


def _finished(job: dict[str, Any]) -> bool:
    return bool({"Complete", "Failed"} & set(_conditions(job)))


def job_outcome(job: dict[str, Any], pod: dict[str, Any] | None) -> tuple[int, str]:
    """A finished Job's exit status for the run (its trainer container's, 1 when it has
    none) and what Kubernetes says ended it ("" for a Job that completed)."""
    conditions = _conditions(job)
    if "Complete" in conditions:
        return 0, ""
    failed = conditions.get("Failed", {})
    reason = (
        f"the Kubernetes Job {job['metadata']['name']} failed "
        f"({failed.get('reason') or 'Failed'}: {failed.get('message') or 'no message'})"
    )
    state = _container_state(pod).get("terminated") or {}
    if state.get("reason") not in (None, "Error", "Completed"):
        reason += f", its {CONTAINER} container {state['reason']}"  # OOMKilled
    code = state.get("exitCode")
    return (code if isinstance(code, int) and code != 0 else 1), reason


def _container_state(pod: dict[str, Any] | None) -> dict[str, Any]:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status.get("state") or {}
    return {}


def _pending_message(pod: dict[str, Any] | None) -> str:
    """Why the pod has not started (unschedulable, image pull), when Kubernetes says."""
    if pod is None:
        return ""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("message") or condition.get("reason") or ""
    waiting = _container_state(pod).get("waiting") or {}
    if waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
        return f"{waiting['reason']}: {waiting.get('message', '')}"
    return ""


def transfer_plan(
    *, export: DatasetExport, manifest: dict[str, Any], output_key: str, expire: int
) -> dict[str, Any]:
    """The pod's plan.json: a presigned GET per export file, a presigned PUT for its output."""
    storage = artifact_storage()
    if not storage_is_s3(storage):
        raise DomainError(
            "the Kubernetes launcher moves datasets and outputs through S3: set STORAGE_BACKEND=s3",
            field="STORAGE_BACKEND",
        )
    expire = min(expire, MAX_PRESIGN_SECONDS)
    return {
        "dataset": [
            {"name": f"{export.format}/{a['name']}", "url": storage.url(a["key"], expire=expire)}
            for a in export.artifacts
        ],
        "manifest": manifest,
        "output_url": storage.url(output_key, expire=expire, http_method="PUT"),
    }


def _own_image(api: KubernetesApi) -> str:
    """The training worker's own image: its Jobs run the code it runs."""
    namespace = api.connection.namespace
    try:
        pod = api.pod_get(namespace, os.environ.get("HOSTNAME", ""))
    except KubernetesError as exc:
        raise DomainError(
            f"TRAINING_KUBERNETES_IMAGE is not set and the worker's own pod cannot be read ({exc})",
            field="TRAINING_KUBERNETES_IMAGE",
        ) from None
    return pod["spec"]["containers"][0]["image"]


def jobs_reap(*, api: KubernetesApi, namespace: str) -> int:
    """Delete the Jobs whose execution no longer owns its run (its worker died and the sweep
    failed the run, or the run was cancelled meanwhile); returns how many."""
    reaped = 0
    for job in api.jobs_list(namespace, f"app.kubernetes.io/managed-by={MANAGED_BY}"):
        meta = job["metadata"]
        if (job.get("status") or {}).get("completionTime"):
            continue  # finished: its ttlSecondsAfterFinished removes it
        run_id, token = (
            meta["labels"].get(RUN_ID_LABEL, ""),
            meta.get("annotations", {}).get(TOKEN_ANNOTATION, ""),
        )
        try:
            owned = TrainingRun.objects.filter(
                pk=int(run_id), run_token=uuid.UUID(token), status=TrainingRun.Status.RUNNING
            ).exists()
        except ValueError:
            continue  # not one of ours after all
        if not owned and api.job_delete(namespace, meta["name"], grace_seconds=None):
            reaped += 1
            log.warning("training.kubernetes.job_reaped job=%s run=%s", meta["name"], run_id)
    return reaped


def kubernetes_job_submit(
    *,
    run: TrainingRun,
    token: uuid.UUID,
    export: DatasetExport,
    log_path: Path,
    metrics_path: Path,
    note: Callable[[str], None],
    settings: JobSettings | None = None,
    api: KubernetesApi | None = None,
) -> KubernetesJob:
    """Create the run's Job and Secret and start following its log."""
    settings = settings or job_settings()
    api = api or KubernetesApi(connection_load(settings.kubeconfig))
    namespace = settings.namespace or api.connection.namespace
    image = settings.image or _own_image(api)
    settings = dataclasses.replace(settings, namespace=namespace, image=image)
    jobs_reap(api=api, namespace=namespace)
    job = job_render(run=run, token=token, job=settings)
    name = job["metadata"]["name"]
    output_key = f"training/transfer/{name}.tar.gz"
    plan = transfer_plan(
        export=export,
        manifest=run.dataset_version.manifest or {},
        output_key=output_key,
        expire=settings.deadline_seconds + URL_MARGIN_SECONDS,
    )
    created = api.job_create(job)
    try:
        api.secret_create(
            secret_render(run=run, job=job, plan=plan, owner_uid=created["metadata"]["uid"])
        )
    except BaseException:
        api.job_delete(namespace, name, grace_seconds=0)
        raise
    note(f"job {name} submitted to namespace {namespace} ({image})")
    log.info("training.kubernetes.job_submitted run=%s job=%s", run.pk, name)
    child = KubernetesJob(
        api=api,
        namespace=namespace,
        name=name,
        follower=LogFollower(log_path=log_path, metrics_path=metrics_path),
        output_key=output_key,
        note=note,
    )
    child.start()
    return child
