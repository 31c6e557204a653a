"""A Kubernetes run's objects, rendered from the run and the settings (no I/O): the batch/v1 Job
and the run-scoped Secret its pod reads `plan.json` and `config.json` from.

The Job runs the training image's own entrypoint (`training_bridge.training.trainer.job`)
around the same trainer command a local run uses (`launchers.trainer_argv`: torchrun with one
process per GPU when `devices` > 1), asks for `devices` GPUs (`nvidia.com/gpu`), never
restarts (backoffLimit 0, restartPolicy Never), ends at `activeDeadlineSeconds`, and is
removed `ttlSecondsAfterFinished` after. No value of the worker's environment is written into
it: its variables are fixed names, or come from the ConfigMaps and Secrets the settings name
(`TRAINING_KUBERNETES_ENV_FROM`), and the pod's service account gets no API token.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from config.errors import DomainError
from training_bridge.models import TrainingRun
from training_bridge.training.services.launchers import (
    CANCEL_GRACE_SECONDS,
    builtin_trainer_config,
    trainer_argv,
)

RUN_DIR = "/etc/spatialprefs-run"  # the run Secret's files
WORK = "/work"  # the pod's scratch (emptyDir): dataset/ and output/, as trainer/job.py reads
CONTAINER = "trainer"
MANAGED_BY = "spatialprefs-worker-training"
RUN_ID_LABEL = "spatialprefs.io/run-id"
TOKEN_ANNOTATION = "spatialprefs.io/run-token"
RUN_USER = 10001  # the images' non-root user (deploy/Dockerfile)
DEFAULTS: dict[str, Any] = {
    "TRAINING_KUBERNETES_NAMESPACE": "",  # "": the worker's own (in-cluster or kubeconfig)
    "TRAINING_KUBERNETES_IMAGE": "",  # "": the training worker's own pod's image
    "TRAINING_KUBERNETES_SERVICE_ACCOUNT": "training-run",
    "TRAINING_KUBERNETES_NODE_SELECTOR": {"nvidia.com/gpu.present": "true"},
    "TRAINING_KUBERNETES_TOLERATIONS": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ],
    "TRAINING_KUBERNETES_ENV_FROM": [],  # "configmap:<name>" / "secret:<name>"
    "TRAINING_KUBERNETES_CPU": "8",
    "TRAINING_KUBERNETES_MEMORY": "48Gi",
    "TRAINING_KUBERNETES_SHM": "8Gi",
    "TRAINING_KUBERNETES_DEADLINE_SECONDS": 12 * 3600,  # the training task's own limit
    "TRAINING_KUBERNETES_TTL_SECONDS": 24 * 3600,
    "TRAINING_KUBERNETES_KUBECONFIG": "",  # "": in-cluster (the worker's service account)
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}


@dataclass(frozen=True)
class JobSettings:
    namespace: str
    image: str
    service_account: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    env_from: list[dict[str, Any]]
    cpu: str
    memory: str
    shm: str
    deadline_seconds: int
    ttl_seconds: int
    kubeconfig: str


def _setting(name: str) -> Any:
    value = getattr(settings, name, None)
    return DEFAULTS[name] if value is None else value


def _bad(name: str, message: str) -> DomainError:
    return DomainError(message, field=name)  # shown as "<name>: <message>"


def _name(name: str, pattern: re.Pattern, *, empty_ok: bool = False) -> str:
    value = _setting(name)
    if not isinstance(value, str) or not (pattern.match(value) or (empty_ok and value == "")):
        raise _bad(name, f"must be a Kubernetes object name, got {value!r}")
    return value


def _quantity(name: str) -> str:
    value = _setting(name)
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise _bad(name, f'must be a quantity such as "8" or "48Gi", got {value!r}')
    return value


def _seconds(name: str) -> int:
    value = _setting(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(name, f"must be a positive number of seconds, got {value!r}")
    return value


def _env_from(name: str) -> list[dict[str, Any]]:
    refs = []
    for item in _setting(name):
        kind, _, ref = str(item).partition(":")
        if kind not in ("configmap", "secret") or not _DNS_SUBDOMAIN.match(ref):
            raise _bad(name, f"lists {item!r}: each is configmap:<name> or secret:<name>")
        refs.append({"configMapRef" if kind == "configmap" else "secretRef": {"name": ref}})
    return refs


def job_settings() -> JobSettings:
    """The TRAINING_KUBERNETES_* settings checked; a bad one is an error naming it."""
    node_selector = _setting("TRAINING_KUBERNETES_NODE_SELECTOR")
    if not isinstance(node_selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in node_selector.items()
    ):
        raise _bad("TRAINING_KUBERNETES_NODE_SELECTOR", 'must be an object {"label": "value"}')
    tolerations = _setting("TRAINING_KUBERNETES_TOLERATIONS")
    if not isinstance(tolerations, list) or not all(
        isinstance(t, dict) and set(t) <= _TOLERATION_KEYS for t in tolerations
    ):
        raise _bad(
            "TRAINING_KUBERNETES_TOLERATIONS",
            f"must be a list of tolerations with keys from {sorted(_TOLERATION_KEYS)}",
        )
    kubeconfig = _setting("TRAINING_KUBERNETES_KUBECONFIG")
    if not isinstance(kubeconfig, str):
        raise _bad("TRAINING_KUBERNETES_KUBECONFIG", "must be a file path")
    image = _setting("TRAINING_KUBERNETES_IMAGE")
    if not isinstance(image, str) or any(c.isspace() for c in image):
        raise _bad("TRAINING_KUBERNETES_IMAGE", f"must be an image reference, got {image!r}")
    return JobSettings(
        namespace=_name("TRAINING_KUBERNETES_NAMESPACE", _DNS_LABEL, empty_ok=True),
        image=image,
        service_account=_name("TRAINING_KUBERNETES_SERVICE_ACCOUNT", _DNS_SUBDOMAIN),
        node_selector=dict(node_selector),
        tolerations=[dict(t) for t in tolerations],
        env_from=_env_from("TRAINING_KUBERNETES_ENV_FROM"),
        cpu=_quantity("TRAINING_KUBERNETES_CPU"),
        memory=_quantity("TRAINING_KUBERNETES_MEMORY"),
        shm=_quantity("TRAINING_KUBERNETES_SHM"),
        deadline_seconds=_seconds("TRAINING_KUBERNETES_DEADLINE_SECONDS"),
        ttl_seconds=_seconds("TRAINING_KUBERNETES_TTL_SECONDS"),
        kubeconfig=kubeconfig,
    )


def job_name(*, run_id: int, token: uuid.UUID) -> str:
    """The Job's (and its Secret's) name: one per execution of a run."""
    return f"spatialprefs-run-{run_id}-{token.hex[:8]}"


def run_labels(*, run_id: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "training-run",
        "app.kubernetes.io/part-of": "spatialprefs",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        RUN_ID_LABEL: str(run_id),
    }


def job_command(*, devices: int) -> list[str]:
    """The pod's command: the transfer entrypoint around the trainer's own argv."""
    trainer = trainer_argv(
        python="python",
        devices=devices,
        dataset_dir=f"{WORK}/dataset",
        output_dir=f"{WORK}/output",
        config_file=f"{RUN_DIR}/config.json",
        cancel_file=None,  # a cancelled run's Job is deleted: the trainer stops on SIGTERM
    )
    return [
        "python", "-m", "training_bridge.training.trainer.job",
        "--plan", f"{RUN_DIR}/plan.json", "--work", WORK, "--", *trainer,
    ]  # fmt: skip


def job_render(*, run: TrainingRun, token: uuid.UUID, job: JobSettings) -> dict[str, Any]:
    """The batch/v1 Job of an execution of a run: `devices` GPUs, the run's `kubernetes`
    block's cpu and memory (else the settings'), the settings' namespace, image, service
    account, node selector, tolerations and env refs."""
    run_id = run.pk
    name = job_name(run_id=run_id, token=token)
    gpus = int(run.config.get("devices", 1))
    resources = run.config.get("kubernetes") or {}
    cpu = resources.get("cpu", job.cpu)
    memory = resources.get("memory", job.memory)
    labels = run_labels(run_id=run_id)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": job.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": CANCEL_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_USER,
            "runAsGroup": RUN_USER,
            "fsGroup": RUN_USER,
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": job.image,
                "command": job_command(devices=gpus),
                "env": [
                    {"name": "SPATIALPREFS_RUN_ID", "value": str(run_id)},
                    {"name": "HOME", "value": WORK},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                ],
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
                    "limits": {"memory": memory, "nvidia.com/gpu": gpus},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
                    {"name": "work", "mountPath": WORK},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {"name": "run", "secret": {"secretName": name, "defaultMode": 0o440}},
            {"name": "work", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            # torch DataLoader workers and NCCL share memory through /dev/shm (64 MiB by default)
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": job.shm}},
        ],
    }
    if job.env_from:
        pod["containers"][0]["envFrom"] = job.env_from
    if job.node_selector:
        pod["nodeSelector"] = job.node_selector
    if job.tolerations:
        pod["tolerations"] = job.tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": job.namespace,
            "labels": labels,
            "annotations": {TOKEN_ANNOTATION: str(token), "spatialprefs.io/worker": run.worker},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.deadline_seconds,
            "ttlSecondsAfterFinished": job.ttl_seconds,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def secret_render(
    *, run: TrainingRun, job: dict[str, Any], plan: dict[str, Any], owner_uid: str | None
) -> dict[str, Any]:
    """The Job's run Secret: the plan (presigned URLs, which expire) and the trainer config,
    owned by the Job so that the Job's deletion removes it."""
    config = builtin_trainer_config(run.config)
    metadata: dict[str, Any] = {
        "name": job["metadata"]["name"],
        "namespace": job["metadata"]["namespace"],
        "labels": dict(job["metadata"]["labels"]),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": metadata["name"], "uid": owner_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": metadata,
        "stringData": {
            "plan.json": json.dumps(plan, indent=1, sort_keys=True),
            "config.json": json.dumps(config, indent=1, sort_keys=True),
        },
    }
