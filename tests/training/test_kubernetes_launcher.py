"""The Kubernetes launcher: the Job rendered from a real run and validated against Kubernetes
1.33's schemas (the deploy tests' validator), the contract of the manifest (no value of the
worker's environment, the run's labels, GPUs and limits), config and settings errors naming
the field, and the pod's side for real: its entrypoint fetches an export from S3 (moto) by
presigned URL, runs a command, sends its output back, and its log, as the API streams it,
is sorted into the run's log and the metrics file the launcher reads.

No well-kept fake API server installs here (kwok and envtest are Go binaries; kmock, on PyPI,
is a scripted aiohttp mock at v0.x), so the calls to the API server are not run."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import urllib3
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.deploy.test_k8s import validate
from tests.factories import DatasetVersionFactory
from tests.training.worlds import procedural_version
from training_bridge.datasets.services.artifacts import artifact_exists, artifact_storage
from training_bridge.models import DatasetExport, TrainingRun
from training_bridge.training.services.kubernetes.api import (
    Connection,
    KubernetesApi,
    connection_load,
)
from training_bridge.training.services.kubernetes.jobs import (
    API_PATIENCE_SECONDS,
    STATUS_SECONDS,
    KubernetesJob,
    LogFollower,
    job_outcome,
    output_fetch,
    transfer_plan,
)
from training_bridge.training.services.kubernetes.manifests import (
    job_render,
    job_settings,
    secret_render,
)
from training_bridge.training.services.launchers import training_run_execute
from training_bridge.training.services.training import training_run_start
from training_bridge.training.trainer.job import METRIC_MARKER

pytestmark = pytest.mark.django_db
RUNS = "/api/training-runs/"
REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.org/spatialprefs/training:0.1.0"
TOKEN = uuid.UUID("00000000-0000-4000-8000-00000000abcd")
WORKER_SECRETS = {
    "SECRET_KEY": "k8s-test-secret-key-value-0123456789",
    "DATABASE_URL": "postgres://app:db-password-k8s@db:5432/app",
    "CELERY_BROKER_URL": "redis://:broker-password-k8s@redis:6379/0",
    "AWS_ACCESS_KEY_ID": "AKIAK8STESTKEYID0001",
    "AWS_SECRET_ACCESS_KEY": "k8s-test-aws-secret-access-key-value",
}


@pytest.fixture
def kube(settings):
    settings.TRAINING_KUBERNETES_ENABLED = True
    settings.TRAINING_KUBERNETES_NAMESPACE = "spatialprefs"
    settings.TRAINING_KUBERNETES_IMAGE = IMAGE
    return settings


@pytest.fixture
def exported(db):
    version = DatasetVersionFactory(
        status="frozen", content_hash="h" * 64, frozen_at=timezone.now()
    )
    DatasetExport.objects.create(
        version=version, format="parquet", include_images=True, status="done"
    )
    return version


def _start(ml_client, version, config: dict) -> TrainingRun:
    response = ml_client.post(RUNS, {"dataset_version": version.pk, "config": config}, "json")
    assert response.status_code == 201, response.json()
    return TrainingRun.objects.get(pk=response.json()["id"])


def _job(run: TrainingRun) -> dict:
    run.worker = "training@worker-training-0:7"
    return job_render(run=run, token=TOKEN, job=job_settings())


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


# -- the Job, rendered from a real run --------------------------------------------------------


def test_a_one_gpu_run_renders_a_job_that_validates_and_runs_the_trainer_in_the_entrypoint(
    kube, ml_client, exported
):
    run = _start(ml_client, exported, {"launcher": "kubernetes", "epochs": 2})

    job = _job(run)
    validate(job)

    assert run.launcher == "kubernetes" and run.config["devices"] == 1
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "python", "-m", "training_bridge.training.trainer.job",
        "--plan", "/etc/spatialprefs-run/plan.json", "--work", "/work", "--",
        "python", "-m", "training_bridge.training.trainer",
        "--dataset-dir", "/work/dataset", "--output-dir", "/work/output",
        "--config", "/etc/spatialprefs-run/config.json",
    ]  # fmt: skip
    assert container["image"] == IMAGE
    assert container["resources"] == {
        "requests": {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": 1},
        "limits": {"memory": "48Gi", "nvidia.com/gpu": 1},
    }
    assert (job["spec"]["backoffLimit"], pod["restartPolicy"]) == (0, "Never")
    assert job["spec"]["activeDeadlineSeconds"] == 12 * 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 24 * 3600
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == (
        "training-run",
        False,
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert job["metadata"]["namespace"] == "spatialprefs"


def test_a_four_gpu_run_renders_torchrun_with_four_processes_and_four_gpus(
    kube, ml_client, exported
):
    run = _start(
        ml_client,
        exported,
        {"launcher": "kubernetes", "devices": 4, "kubernetes": {"cpu": "32", "memory": "200Gi"}},
    )

    job = _job(run)
    validate(job)

    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    trainer = command[command.index("--") + 1 :]
    assert trainer[:6] == [
        "python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
    ]  # fmt: skip
    assert trainer[6:8] == ["-m", "training_bridge.training.trainer"]
    assert container["resources"] == {
        "requests": {"cpu": "32", "memory": "200Gi", "nvidia.com/gpu": 4},
        "limits": {"memory": "200Gi", "nvidia.com/gpu": 4},
    }


def test_the_job_and_its_secret_inline_no_value_of_the_workers_environment(
    kube, ml_client, exported, monkeypatch
):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    kube.SECRET_KEY = WORKER_SECRETS["SECRET_KEY"]
    kube.TRAINING_KUBERNETES_ENV_FROM = ["secret:training-trackers", "configmap:training-env"]
    run = _start(ml_client, exported, {"launcher": "kubernetes", "devices": 2})
    job = _job(run)
    plan = {"dataset": [], "manifest": {}, "output_url": "https://s3.example.org/put"}
    secret = secret_render(run=run, job=job, plan=plan, owner_uid="uid-1")

    text = "\n".join(_strings(job) + _strings(secret))
    for name, value in WORKER_SECRETS.items():
        assert value not in text, name
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "SPATIALPREFS_RUN_ID": str(run.pk),
        "HOME": "/work",
        "PYTHONUNBUFFERED": "1",
    }
    assert container["envFrom"] == [
        {"secretRef": {"name": "training-trackers"}},
        {"configMapRef": {"name": "training-env"}},
    ]
    assert json.loads(secret["stringData"]["config.json"]) == {
        k: v for k, v in run.config.items() if k not in ("launcher", "model_name", "kubernetes")
    }


def test_the_job_its_pods_and_its_secret_carry_the_runs_labels_and_the_job_owns_the_secret(
    kube, ml_client, exported
):
    run = _start(ml_client, exported, {"launcher": "kubernetes"})
    job = _job(run)
    plan = {"dataset": [], "manifest": {}, "output_url": "https://s3.example.org/put"}

    secret = secret_render(run=run, job=job, plan=plan, owner_uid="0d4c-uid")
    validate(secret)

    labels = {
        "app.kubernetes.io/name": "training-run",
        "app.kubernetes.io/part-of": "spatialprefs",
        "app.kubernetes.io/managed-by": "spatialprefs-worker-training",
        "spatialprefs.io/run-id": str(run.pk),
    }
    name = f"spatialprefs-run-{run.pk}-{TOKEN.hex[:8]}"
    assert job["metadata"]["name"] == secret["metadata"]["name"] == name
    assert job["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"] == labels
    assert secret["metadata"]["labels"] == labels
    assert job["metadata"]["annotations"] == {
        "spatialprefs.io/run-token": str(TOKEN),
        "spatialprefs.io/worker": "training@worker-training-0:7",
    }
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": "0d4c-uid"}
    ]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["run"]["secret"]["secretName"] == name
    assert json.loads(secret["stringData"]["plan.json"]) == plan


def test_the_start_form_offers_the_kubernetes_launcher_only_where_it_is_enabled(
    settings, ml_engineer, exported
):
    client = Client()
    client.force_login(ml_engineer)
    add = reverse("admin:training_bridge_trainingrun_add")

    before = client.get(add).content.decode()
    settings.TRAINING_KUBERNETES_ENABLED = True
    offered = client.get(add).content.decode()
    started = client.post(
        add,
        {"dataset_version": exported.pk, "launcher": "kubernetes",
         "config": json.dumps({"devices": 2, "epochs": 1})},
    )  # fmt: skip

    assert 'value="kubernetes"' not in before
    assert '<option value="kubernetes">' in offered
    assert started.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.launcher, run.config["devices"], run.config["kubernetes"]) == ("kubernetes", 2, {})


# -- bad config and settings name the field ---------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"devices": 0}, "config.devices", "must be an integer from 1 to 64, got 0"),
        ({"devices": "4"}, "config.devices", "must be an integer from 1 to 64, got '4'"),
        ({"devices": 2.5}, "config.devices", "got 2.5"),
        ({"device": "cpu"}, "config.device", "device must be auto or cuda, got 'cpu'"),
        ({"kubernetes": {"gpus": 2}}, "config.kubernetes.gpus", "its GPU count is `devices`"),
        ({"kubernetes": {"memory": 48}}, "config.kubernetes.memory", "got 48"),
        ({"kubernetes": {"cpu": "8 cores"}}, "config.kubernetes.cpu", "quantity"),
        ({"kubernetes": "big"}, "config.kubernetes", "must be an object"),
        ({"epochz": 3}, "config.epochz", "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_kubernetes_config_is_a_400_naming_the_field(
    kube, ml_client, exported, config, field, message
):
    response = ml_client.post(
        RUNS,
        {"dataset_version": exported.pk, "config": {"launcher": "kubernetes", **config}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


def test_a_kubernetes_run_is_refused_where_the_launcher_is_not_enabled(ml_client, exported):
    response = ml_client.post(
        RUNS, {"dataset_version": exported.pk, "config": {"launcher": "kubernetes"}}, "json"
    )

    assert response.status_code == 400
    assert response.json()["field"] == "config.launcher"
    assert "TRAINING_KUBERNETES_ENABLED" in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TRAINING_KUBERNETES_ENV_FROM", ["spatialprefs-secrets"]),
        ("TRAINING_KUBERNETES_NAMESPACE", "Spatial_Prefs"),
        ("TRAINING_KUBERNETES_MEMORY", "lots"),
        ("TRAINING_KUBERNETES_DEADLINE_SECONDS", 0),
        ("TRAINING_KUBERNETES_TOLERATIONS", [{"key": "gpu", "operater": "Exists"}]),
        ("TRAINING_KUBERNETES_NODE_SELECTOR", {"gpu": True}),
    ],
)
def test_a_bad_setting_fails_the_run_before_anything_is_submitted_naming_it(
    kube, exported, setting, value
):
    run = training_run_start(
        version_id=exported.pk, config={"launcher": "kubernetes"}, enqueue=False
    ).run
    setattr(kube, setting, value)

    result = training_run_execute(run_id=run.pk)

    assert result.status == "failed"
    assert result.error.startswith(f"{setting}: ")
    assert "job " not in result.log_tail  # nothing submitted


def test_a_worker_outside_a_cluster_without_a_kubeconfig_fails_the_run_naming_the_setting(
    kube, exported, monkeypatch
):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    run = training_run_start(
        version_id=exported.pk, config={"launcher": "kubernetes"}, enqueue=False
    ).run

    result = training_run_execute(run_id=run.pk)

    assert result.status == "failed"
    assert result.error == (
        "TRAINING_KUBERNETES_KUBECONFIG: the worker is not in a Kubernetes pod with a service "
        "account and TRAINING_KUBERNETES_KUBECONFIG is not set"
    )
    assert result.run_token is None


def test_a_kubeconfig_with_exec_credentials_is_refused_naming_the_setting(kube, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "current-context": "eks",
                "contexts": [{"name": "eks", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://k.example.org"}}],
                "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}],
            }
        )
    )

    with pytest.raises(Exception, match="exec and auth-provider credentials") as caught:
        connection_load(str(kubeconfig))

    assert caught.value.field == "TRAINING_KUBERNETES_KUBECONFIG"


# -- how a finished Job maps to the run's outcome ---------------------------------------------


def _finished_job(condition: str, reason: str = "", message: str = "") -> dict:
    return {
        "metadata": {"name": "spatialprefs-run-7-abcd"},
        "status": {
            "conditions": [
                {"type": "SuccessCriteriaMet" if condition == "Complete" else "FailureTarget",
                 "status": "True"},
                {"type": condition, "status": "True", "reason": reason, "message": message},
            ]
        },
    }  # fmt: skip


def _pod(terminated: dict) -> dict:
    return {
        "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}]}
    }


def test_a_finished_job_gives_the_trainers_exit_status_and_what_kubernetes_says_ended_it():
    assert job_outcome(_finished_job("Complete"), _pod({"exitCode": 0})) == (0, "")
    assert job_outcome(
        _finished_job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff"),
        _pod({"exitCode": 2, "reason": "Error"}),
    ) == (
        2,
        "the Kubernetes Job spatialprefs-run-7-abcd failed (BackoffLimitExceeded: Job has "
        "reached the specified backoff)",
    )
    assert job_outcome(
        _finished_job("Failed", "BackoffLimitExceeded", "limit"),
        _pod({"exitCode": 137, "reason": "OOMKilled"}),
    ) == (
        137,
        "the Kubernetes Job spatialprefs-run-7-abcd failed (BackoffLimitExceeded: limit), its "
        "trainer container OOMKilled",
    )
    # never scheduled (no free GPU) until the deadline: no container, no status of its own
    assert job_outcome(
        _finished_job("Failed", "DeadlineExceeded", "Job was active longer than specified"), None
    ) == (
        1,
        "the Kubernetes Job spatialprefs-run-7-abcd failed (DeadlineExceeded: Job was active "
        "longer than specified)",
    )


def test_an_api_server_that_does_not_answer_is_waited_for_then_fails_the_run(tmp_path):
    """A real connection to a closed port: the Job goes on while the API server is away (an
    upgrade of the control plane), up to the patience, then the error ends the watch."""
    now = [0.0]
    notes: list[str] = []
    connection = Connection(
        server="https://127.0.0.1:9",
        namespace="spatialprefs",
        ssl_context=ssl.create_default_context(),
    )
    job = KubernetesJob(
        api=KubernetesApi(connection),
        namespace="spatialprefs",
        name="spatialprefs-run-7-abcd",
        follower=LogFollower(log_path=tmp_path / "log", metrics_path=tmp_path / "m"),
        output_key="training/transfer/x.tar.gz",
        note=notes.append,
        clock=lambda: now[0],
    )

    assert job.poll() is None
    now[0] = API_PATIENCE_SECONDS
    assert job.poll() is None
    now[0] = API_PATIENCE_SECONDS + STATUS_SECONDS + 1
    with pytest.raises(urllib3.exceptions.HTTPError):
        job.poll()

    (note,) = notes
    assert note.startswith("job spatialprefs-run-7-abcd: the API server does not answer:")


# -- the pod's side, for real -----------------------------------------------------------------

POD_COMMAND = """
import json, pathlib, sys
dataset, output = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
print("files", files, flush=True)
with (output / "metrics.jsonl").open("a") as metrics:
    for step in (1, 2):
        metrics.write(json.dumps({"name": "train/loss", "step": step, "value": 1.0 / step}) + "\\n")
        metrics.write(json.dumps({"progress": {"step": step, "total_steps": 2}}) + "\\n")
        metrics.flush()
        print(f"step {step} done", flush=True)
(output / "model").mkdir()
(output / "model" / "weights.bin").write_bytes(b"\\x00weights")
(output / "summary.json").write_text(json.dumps({"val/accuracy": 0.75}))
"""


def _timestamped(stdout: bytes) -> bytes:
    """The log as the API sends it with timestamps=true: an RFC 3339 time before each line."""
    lines = stdout.splitlines(keepends=True)
    return b"".join(
        f"2026-12-07T14:00:{i // 10:02d}.{i:09d}Z ".encode() + line for i, line in enumerate(lines)
    )


def test_the_pod_fetches_the_export_sends_its_output_and_its_log_feeds_the_runs_files(
    s3_settings, tmp_path
):
    version = procedural_version(groups=3, seeds=1)
    export = DatasetExport.objects.get(version=version, format="parquet")
    output_key = f"training/transfer/test-{uuid.uuid4().hex[:8]}.tar.gz"
    plan = transfer_plan(
        export=export, manifest=version.manifest, output_key=output_key, expire=600
    )
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    pod_work = tmp_path / "pod"

    pod = subprocess.run(
        [sys.executable, "-m", "training_bridge.training.trainer.job",
         "--plan", str(tmp_path / "plan.json"), "--work", str(pod_work), "--",
         sys.executable, "-c", POD_COMMAND, str(pod_work / "dataset"), str(pod_work / "output")],
        capture_output=True, timeout=60, cwd=REPO,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip

    assert pod.returncode == 0, pod.stderr.decode()
    names = sorted(f"parquet/{a['name']}" for a in export.artifacts)
    assert f"files {sorted([*names, 'manifest.json'])}".encode() in pod.stdout
    assert json.loads((pod_work / "dataset" / "manifest.json").read_text()) == version.manifest
    assert artifact_exists(key=output_key)

    # the worker's side: the stream in pieces cut mid-line, then a reconnect from an earlier
    # second that repeats lines already seen
    stream = _timestamped(pod.stdout)
    run_dir = tmp_path / "run"
    (run_dir / "output").mkdir(parents=True)
    follower = LogFollower(log_path=run_dir / "train.log", metrics_path=run_dir / "metrics.jsonl")
    cut = len(stream) * 2 // 3
    for at in range(0, cut, 7):
        follower.feed(stream[at : min(at + 7, cut)])
    follower.reconnect()
    follower.feed(stream)
    follower.close()

    pod_metrics = (pod_work / "output" / "metrics.jsonl").read_bytes()
    assert (run_dir / "metrics.jsonl").read_bytes() == pod_metrics
    assert len(pod_metrics.splitlines()) == 4
    log = (run_dir / "train.log").read_text()
    assert METRIC_MARKER not in log
    assert [line.split(" ", 1)[0] for line in log.splitlines()] == [
        "job.dataset", "files", "step", "step", "job.output",
    ]  # fmt: skip

    assert output_fetch(key=output_key, output_dir=run_dir / "output", work=run_dir) is True
    assert (run_dir / "output" / "model" / "weights.bin").read_bytes() == b"\x00weights"
    assert (run_dir / "output" / "metrics.jsonl").read_bytes() == pod_metrics
    assert json.loads((run_dir / "output" / "summary.json").read_text()) == {"val/accuracy": 0.75}
    assert not artifact_exists(key=output_key)
    assert output_fetch(key=output_key, output_dir=run_dir / "output", work=run_dir) is False


def test_the_pod_fails_with_the_transfer_status_when_a_dataset_url_is_refused(
    s3_settings, tmp_path
):
    plan = {
        "dataset": [{"name": "parquet/train.parquet", "url": "http://127.0.0.1:9/nothing"}],
        "manifest": {},
        "output_url": "http://127.0.0.1:9/nothing",
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))

    pod = subprocess.run(
        [sys.executable, "-m", "training_bridge.training.trainer.job",
         "--plan", str(tmp_path / "plan.json"), "--work", str(tmp_path / "pod"), "--",
         sys.executable, "-c", "raise SystemExit('the command must not run')"],
        capture_output=True, timeout=60, cwd=REPO,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)},
    )  # fmt: skip

    assert pod.returncode == 4
    assert b"job.dataset_failed downloading parquet/train.parquet" in pod.stderr
    assert b"must not run" not in pod.stderr


def test_a_pods_output_cannot_write_outside_the_runs_output_folder(s3_settings, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(b"outside")
        tar.addfile(info, io.BytesIO(b"outside"))
    key = f"training/transfer/evil-{uuid.uuid4().hex[:8]}.tar.gz"
    with evil.open("rb") as handle:
        artifact_storage().save(key, handle)
    (tmp_path / "output").mkdir()

    with pytest.raises(tarfile.OutsideDestinationError):
        output_fetch(key=key, output_dir=tmp_path / "output", work=tmp_path)

    assert not (tmp_path / "escaped.txt").exists()
