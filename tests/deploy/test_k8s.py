"""deploy/k8s: each overlay rendered with `kubectl kustomize`, every object validated with
kubernetes-validate against a pinned Kubernetes version (strict: unknown fields fail), KEDA's
ScaledObject against its vendored CRD schema, and the objects checked against each other, the
Procfile and the app's URLs and settings."""

import ipaddress
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.test import Client
from django.urls import resolve

from tests.deploy.procfile import procfile_commands

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
SCHEMAS = ROOT / "deploy" / "schemas"
KEDA_CRDS = {
    "ScaledObject": SCHEMAS / "keda-scaledobjects.yaml",
    "TriggerAuthentication": SCHEMAS / "keda-triggerauthentications.yaml",
}
# The redis scaler's trigger metadata and auth parameter names: the `keda:"name=..."` tags of
# pkg/scalers/redis_scaler.go at the vendored CRDs' KEDA commit (deploy/schemas/README.md).
REDIS_TRIGGER_METADATA = {
    "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
    "unsafeSsl", "listLength", "activationListLength", "listName", "databaseIndex", "enableTLS",
}  # fmt: skip
OVERLAYS = ["dev", "prod"]


def render(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (kubectl kustomize)"
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(render(K8S / "overlays" / overlay))


def objects(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


@cache
def _keda_schema(kind: str) -> dict:
    crd = yaml.safe_load(KEDA_CRDS[kind].read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    """Fields the API server would prune as unknown (a structural schema's rule): not among an
    object's `properties`, where the schema neither preserves unknown fields nor allows more."""
    found = []
    if isinstance(value, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        for key, item in value.items():
            if key in schema["properties"]:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def validate_keda(obj: dict) -> None:
    schema = _keda_schema(obj["kind"])
    jsonschema.Draft7Validator(schema).validate(obj)
    # metadata is ObjectMeta, which the CRD leaves to the API server.
    unknown = unknown_fields({k: v for k, v in obj.items() if k != "metadata"}, schema)
    assert not unknown, f"unknown fields: {unknown}"


def validate(obj: dict) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        validate_keda(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates(overlay):
    kinds = {o["kind"] for o in rendered(overlay)}
    assert kinds == {
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "Job", "Ingress", "ScaledObject", "ServiceAccount", "Role", "RoleBinding",
    } | ({"TriggerAuthentication"} if overlay == "prod" else set())  # fmt: skip
    for obj in rendered(overlay):
        validate(obj)
        assert obj["metadata"]["namespace"] == f"spatialprefs{'-dev' if overlay == 'dev' else ''}"


def test_the_validators_reject_a_misspelled_field():
    web = dict(objects("prod", "Deployment")["web"])
    web["spec"] = dict(web["spec"], replica=3)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(web)
    scaled = dict(objects("prod", "ScaledObject")["worker-gpu"])
    scaled["spec"] = dict(scaled["spec"], maxReplicaCont=4)
    with pytest.raises(AssertionError, match="maxReplicaCont"):
        validate(scaled)
    scaled["spec"] = {k: v for k, v in scaled["spec"].items() if k != "scaleTargetRef"}
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)
    auth = dict(objects("prod", "TriggerAuthentication")["redis-broker"])
    auth["spec"] = {"secretTargetRefs": auth["spec"]["secretTargetRef"]}
    with pytest.raises(AssertionError, match="secretTargetRefs"):
        validate(auth)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_and_scale_targets_name_real_deployments(overlay):
    deployments = objects(overlay, "Deployment")
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    for name, d in deployments.items():
        assert d["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items()

    def matches(selector: dict) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    for service in objects(overlay, "Service").values():
        assert matches(service["spec"]["selector"]) == ["web"]
    pdbs = objects(overlay, "PodDisruptionBudget")
    assert set(pdbs) == {"web", "worker-cpu", "worker-gpu", "worker-training"}
    for name, pdb in pdbs.items():
        assert matches(pdb["spec"]["selector"]["matchLabels"]) == [name]
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in objects(overlay, "HorizontalPodAutoscaler").values()
    }
    keda = {s["spec"]["scaleTargetRef"]["name"] for s in objects(overlay, "ScaledObject").values()}
    assert scaled == {"web"} and keda == {"worker-gpu"}
    ingress = objects(overlay, "Ingress")["web"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] in objects(overlay, "Service")
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    allowed = objects(overlay, "ConfigMap")["spatialprefs-config"]["data"]["ALLOWED_HOSTS"]
    assert ingress["spec"]["rules"][0]["host"] in allowed.split(",")


def ingress_route(overlay: str, host: str, path: str) -> dict:
    """The Ingress whose rule serves `path` on `host`, by Kubernetes' precedence: an Exact match
    first, then the longest Prefix match (by whole path elements)."""
    candidates = []
    for ingress in objects(overlay, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            if rule["host"] != host:
                continue
            for item in rule["http"]["paths"]:
                prefix = item["path"].rstrip("/")
                if item["pathType"] == "Exact" and path == item["path"]:
                    candidates.append(((1, len(item["path"])), ingress))
                elif item["pathType"] == "Prefix" and (
                    path == prefix or path.startswith(f"{prefix}/")
                ):
                    candidates.append(((0, len(prefix)), ingress))
    assert candidates, (host, path)
    return max(candidates, key=lambda candidate: candidate[0])[1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_refuses_metrics_to_every_address_and_serves_the_rest(overlay):
    """ingress-nginx's denylist on the rule that wins for /metrics (Prometheus asks the pods);
    the health check, the API and the site go through to web unrestricted."""
    (host,) = {r["host"] for i in objects(overlay, "Ingress").values() for r in i["spec"]["rules"]}
    metrics = ingress_route(overlay, host, "/metrics")
    assert resolve("/metrics").url_name == "metrics"
    denied = metrics["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"]
    networks = {ipaddress.ip_network(n.strip()) for n in denied.split(",")}
    assert networks == {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
    assert metrics["spec"]["tls"][0]["hosts"] == [host]
    for path in ("/", "/api/health/", "/metrics/", "/metricsx", "/accounts/login/"):
        served = ingress_route(overlay, host, path)
        annotations = served["metadata"].get("annotations", {})
        assert not any("source-range" in name for name in annotations), path
        (rule,) = served["spec"]["rules"]
        assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "web"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_the_procfile_commands_non_root_with_the_config_and_secrets(overlay):
    procfile = procfile_commands()
    deployments = objects(overlay, "Deployment")
    assert set(deployments) == set(procfile)
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        expected = [w.replace("${CUDA_VISIBLE_DEVICES:-0}", "0") for w in procfile[name]]
        assert container["command"][: len(expected)] == expected, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert {
            r.get("configMapRef", r.get("secretRef"))["name"] for r in container["envFrom"]
        } == {
            "spatialprefs-config",
            "spatialprefs-secrets",
        }
        image = container["image"]
        assert image.rsplit(":", 1)[1] == ("dev" if overlay == "dev" else "0.1.0"), image


def test_gpu_workers_take_one_gpu_each_on_gpu_nodes_and_scale_on_the_gpu_queue():
    for overlay in OVERLAYS:
        gpu = objects(overlay, "Deployment")["worker-gpu"]["spec"]["template"]["spec"]
        assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
            "tolerations"
        ]
        (trigger,) = objects(overlay, "ScaledObject")["worker-gpu"]["spec"]["triggers"]
        # The list Celery's Redis transport keeps the queue in: the worker's -Q.
        command = objects(overlay, "Deployment")["worker-gpu"]["spec"]["template"]["spec"][
            "containers"
        ][0]["command"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == command[command.index("-Q") + 1] == "gpu"
        assert trigger["metadata"]["address"].endswith(
            f".spatialprefs{'-dev' if overlay == 'dev' else ''}.svc.cluster.local:6379"
        )


def test_beat_is_one_replica_replaced_not_rolled():
    for overlay in OVERLAYS:
        beat = objects(overlay, "Deployment")["beat"]["spec"]
        assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_web_probes_reach_the_apps_readiness_and_liveness_views():
    web = objects("prod", "Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]
    assert resolve(web["readinessProbe"]["httpGet"]["path"]).url_name == "health"
    assert resolve(web["livenessProbe"]["httpGet"]["path"]).url_name == "health-live"
    assert resolve(web["startupProbe"]["httpGet"]["path"]).url_name == "health-live"


def test_migrate_job_migrates_and_sets_roles_with_the_web_image():
    job = objects("prod", "Job")["migrate"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert (
        container["image"]
        == objects("prod", "Deployment")["web"]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
    )
    script = container["command"][-1]
    assert script.index("manage.py migrate") < script.index("manage.py setup_roles")


def test_configmap_names_only_settings_the_app_reads():
    settings = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_0-9]+)"', settings))
    for overlay in OVERLAYS:
        data = objects(overlay, "ConfigMap")["spatialprefs-config"]["data"]
        assert set(data) - read == set()


def test_every_image_is_a_target_of_the_dockerfile():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.M))
    base = render(K8S / "base")
    for obj in base:
        if obj["kind"] in ("Deployment", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                repository, name = container["image"].split("/")
                assert repository == "spatialprefs" and name in stages, container["image"]


def overlay_settings(overlay: str, settings) -> None:
    """The ConfigMap's Host and TLS settings, on the test's settings."""
    data = objects(overlay, "ConfigMap")["spatialprefs-config"]["data"]
    settings.ALLOWED_HOSTS = data["ALLOWED_HOSTS"].split(",")
    settings.SECURE_SSL_REDIRECT = data["SECURE_SSL_REDIRECT"] == "1"
    settings.SECURE_HSTS_SECONDS = int(data["SECURE_HSTS_SECONDS"])


def web_container(overlay: str) -> dict:
    return objects(overlay, "Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]


POD_ADDRESS = "10.1.2.3:8000"  # the Host a kubelet's probe or a pod-discovering Prometheus sends


@pytest.mark.django_db
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_probes_as_the_kubelet_sends_them_pass_under_the_overlays_security_settings(
    overlay, settings
):
    """Each probe as the kubelet sends it (no headers: plain HTTP, the pod's IP as the Host),
    through the whole middleware stack with the ConfigMap's ALLOWED_HOSTS and TLS settings: 200.
    The same Host on another path is still refused."""
    overlay_settings(overlay, settings)
    assert "localhost" not in settings.ALLOWED_HOSTS  # the probes need no name of their own
    web = web_container(overlay)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = web[probe]["httpGet"]
        assert set(get) == {"path", "port"}, probe
        assert get["port"] in {port["name"] for port in web["ports"]}
        response = Client(HTTP_HOST=POD_ADDRESS).get(get["path"])
        assert response.status_code == 200, (probe, response.status_code, response.content)
    assert Client(HTTP_HOST=POD_ADDRESS).get("/accounts/login/").status_code == 400


def test_keda_reads_the_brokers_password_from_the_secret_in_prod():
    (trigger,) = objects("prod", "ScaledObject")["worker-gpu"]["spec"]["triggers"]
    auth = objects("prod", "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] in REDIS_TRIGGER_METADATA
    assert (ref["name"], ref["key"]) == ("spatialprefs-secrets", "REDIS_PASSWORD")
    for overlay in OVERLAYS:
        (trigger,) = objects(overlay, "ScaledObject")["worker-gpu"]["spec"]["triggers"]
        assert set(trigger["metadata"]) <= REDIS_TRIGGER_METADATA
        assert int(trigger["metadata"]["listLength"]) >= 1


# -- the Kubernetes launcher (training_bridge/training/services/kubernetes/) ------------------

EXAMPLE_JOB = K8S / "examples" / "training-run-job.yaml"
# What kubernetes/api.py calls, as (API group, resource, verb).
LAUNCHER_CALLS = {
    ("batch", "jobs", "create"), ("batch", "jobs", "get"), ("batch", "jobs", "list"),
    ("batch", "jobs", "delete"), ("", "secrets", "create"), ("", "pods", "get"),
    ("", "pods", "list"), ("", "pods/log", "get"),
}  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_training_workers_service_account_may_submit_and_follow_jobs_and_nothing_more(
    overlay,
):
    from training_bridge.training.services.kubernetes.manifests import DEFAULTS

    worker = objects(overlay, "Deployment")["worker-training"]["spec"]["template"]["spec"]
    accounts = objects(overlay, "ServiceAccount")
    (binding,) = objects(overlay, "RoleBinding").values()
    role = objects(overlay, "Role")[binding["roleRef"]["name"]]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == LAUNCHER_CALLS
    namespace = binding["metadata"]["namespace"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": worker["serviceAccountName"], "namespace": namespace}
    ]
    assert worker["serviceAccountName"] in accounts
    # the runs' pods: the launcher's default service account, with no API token
    run_account = accounts[DEFAULTS["TRAINING_KUBERNETES_SERVICE_ACCOUNT"]]
    assert run_account["automountServiceAccountToken"] is False
    for name, deployment in objects(overlay, "Deployment").items():
        if name != "worker-training":
            assert "serviceAccountName" not in deployment["spec"]["template"]["spec"], name


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the Secret's JSON files) as literal blocks, readable in review."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def _example_objects(settings) -> list[dict]:
    """A 4-GPU run's Job and Secret as the launcher renders them with the prod overlay's
    namespace and image (the Secret's URLs stand in for presigned ones)."""
    import uuid

    from training_bridge.models import TrainingRun
    from training_bridge.training.services.kubernetes.manifests import (
        job_render,
        job_settings,
        secret_render,
    )

    settings.TRAINING_KUBERNETES_NAMESPACE = "spatialprefs"
    settings.TRAINING_KUBERNETES_IMAGE = "registry.example.org/spatialprefs/training:0.1.0"
    settings.TRAINING_KUBERNETES_ENV_FROM = ["secret:training-trackers"]
    # a run's config as started; the stored one also holds every trainer default
    config = {"launcher": "kubernetes", "model_name": "spatial-rm", "devices": 4, "epochs": 3,
              "kubernetes": {"cpu": "32"}}  # fmt: skip
    run = TrainingRun(pk=42, config=config, worker="training@worker-training-7d9f-x2k4l:1")
    token = uuid.UUID("6f1c2a9e-0b7d-4c1e-9a53-2d8e4b7f0c11")
    job = job_render(run=run, token=token, job=job_settings())
    plan = {
        "dataset": [{"name": "parquet/train-00000.parquet", "url": "<presigned GET URL>"}],
        "manifest": {"dataset": "scenes", "version": 1},
        "output_url": "<presigned PUT URL>",
    }
    return [job, secret_render(run=run, job=job, plan=plan, owner_uid="<the Job's uid>")]


def test_the_example_training_job_is_what_the_launcher_renders_and_validates(settings):
    """deploy/k8s/examples/training-run-job.yaml; SPATIALPREFS_WRITE_EXAMPLES=1 rewrites it."""
    import os

    expected = _example_objects(settings)
    header = (
        "# What the training worker submits for a run of\n"
        '#   {"launcher": "kubernetes", "devices": 4, "epochs": 3, "kubernetes": {"cpu": "32"}}\n'
        "# (rendered by training_bridge/training/services/kubernetes/manifests.py; checked by\n"
        "# tests/deploy/test_k8s.py, SPATIALPREFS_WRITE_EXAMPLES=1 rewrites it). Not applied by\n"
        "# hand: the worker creates one Job and one Secret per execution of a run.\n"
    )
    if os.environ.get("SPATIALPREFS_WRITE_EXAMPLES") == "1":
        EXAMPLE_JOB.parent.mkdir(exist_ok=True)
        text = yaml.dump_all(expected, Dumper=_BlockDumper, sort_keys=False)
        EXAMPLE_JOB.write_text(header + text)
    documents = [d for d in yaml.safe_load_all(EXAMPLE_JOB.read_text()) if d]
    assert documents == expected
    for obj in documents:
        validate(obj)
