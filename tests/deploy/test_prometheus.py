"""deploy/prometheus/scrape-configs.yaml against what it scrapes: the kubernetes jobs select the
web and worker pods of deploy/k8s by their label and port name, the compose jobs name compose's
services and ports, and a scrape as each web job sends it (plain HTTP, the target's address as
the Host, the bearer token) is answered under the shipped settings, and refused without the
token. Every process the jobs scrape runs prometheus_client's multiprocess mode on a folder of
its own that each start finds empty (an emptyDir, a tmpfs)."""

import re
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.urls import resolve

from tests.deploy.test_k8s import POD_ADDRESS, objects, overlay_settings, web_container

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIGS = ROOT / "deploy" / "prometheus" / "scrape-configs.yaml"
COMPOSE = ROOT / "deploy" / "compose.yaml"
TOKEN = "scrape-token-for-tests-0123456789"


def jobs() -> dict[str, dict]:
    return {
        job["job_name"]: job for job in yaml.safe_load(SCRAPE_CONFIGS.read_text())["scrape_configs"]
    }


def kept(job: dict) -> dict[str, str]:
    """The `keep` rules of a job's relabelling: source label -> regex."""
    rules = [rule for rule in job["relabel_configs"] if rule.get("action") == "keep"]
    return {rule["source_labels"][0]: rule["regex"] for rule in rules}


def env_example() -> dict[str, str]:
    lines = (ROOT / "deploy" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def scraped(job: dict, host: str) -> tuple[int, int]:
    """(status with the token, status without) of the job's scrape as Prometheus sends it."""
    assert job["scheme"] == "http"
    assert job["authorization"]["type"] == "Bearer"
    assert resolve(job["metrics_path"]).url_name == "metrics"
    client = Client(HTTP_HOST=host)
    with_token = client.get(job["metrics_path"], headers={"Authorization": f"Bearer {TOKEN}"})
    return with_token.status_code, client.get(job["metrics_path"]).status_code


@pytest.mark.django_db
def test_the_kubernetes_job_scrapes_the_web_pods_port_under_the_prod_settings(settings):
    job = jobs()["spatialprefs-web"]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    prod = objects("prod", "Deployment")["web"]
    assert discovery["namespaces"]["names"] == [prod["metadata"]["namespace"]]
    labels = prod["spec"]["template"]["metadata"]["labels"]
    ports = {port["name"]: port["containerPort"] for port in web_container("prod")["ports"]}
    keep = kept(job)
    assert labels["app.kubernetes.io/name"] == keep.pop(
        "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    )
    assert ports[keep.pop("__meta_kubernetes_pod_container_port_name")] == 8000
    assert keep == {}
    # the probes ask the same port
    assert web_container("prod")["livenessProbe"]["httpGet"]["port"] in ports
    overlay_settings("prod", settings)
    settings.METRICS_TOKEN = TOKEN
    assert scraped(job, POD_ADDRESS) == (200, 403)


@pytest.mark.django_db
def test_the_compose_job_scrapes_the_web_service_under_the_env_example_settings(settings):
    job = jobs()["spatialprefs-web-compose"]
    ((target,),) = [config["targets"] for config in job["static_configs"]]
    service, port = target.split(":")
    web = yaml.safe_load(COMPOSE.read_text())["services"][service]
    assert port in web["expose"]
    assert f"0.0.0.0:{port}" in web["command"]
    example = env_example()
    settings.ALLOWED_HOSTS = example["ALLOWED_HOSTS"].split(",")
    settings.SECURE_SSL_REDIRECT = example["SECURE_SSL_REDIRECT"] == "1"
    settings.METRICS_TOKEN = TOKEN
    assert scraped(job, target) == (200, 403)


@pytest.mark.django_db
def test_composes_web_health_check_passes_under_the_env_example_settings(settings):
    """The check's URL, with the Host urllib sends for it (its own address), answered 200."""
    test = yaml.safe_load(COMPOSE.read_text())["services"]["web"]["healthcheck"]["test"]
    (url,) = [word for part in test for word in part.split("'") if word.startswith("http://")]
    host, path = url.removeprefix("http://").split("/", 1)
    assert resolve(f"/{path}").url_name == "health"
    example = env_example()
    settings.ALLOWED_HOSTS = example["ALLOWED_HOSTS"].split(",")
    settings.SECURE_SSL_REDIRECT = example["SECURE_SSL_REDIRECT"] == "1"
    assert Client(HTTP_HOST=host).get(f"/{path}").status_code == 200


WORKERS = {"worker-cpu", "worker-gpu", "worker-training"}
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


def pods_kept(job: dict, overlay: str) -> set[str]:
    """The Deployments whose pods the job's `keep` rules let through, as Prometheus matches them
    (each regex anchored at both ends), with the port they keep."""
    keep = kept(job)
    assert set(keep) == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name",
        "__meta_kubernetes_pod_container_port_name",
    }
    found = set()
    for name, deployment in objects(overlay, "Deployment").items():
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        label = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        ports = [port["name"] for port in container.get("ports", [])]
        if re.fullmatch(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"], label) and any(
            re.fullmatch(keep["__meta_kubernetes_pod_container_port_name"], port) for port in ports
        ):
            found.add(name)
    return found


def container_env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_the_kubernetes_jobs_scrape_web_and_every_workers_metrics_port_and_not_beat():
    web, workers = jobs()["spatialprefs-web"], jobs()["spatialprefs-workers"]
    assert "authorization" not in workers  # the workers' exporter asks for no token
    for overlay in ("dev", "prod"):
        assert pods_kept(web, overlay) == {"web"}
        assert pods_kept(workers, overlay) == WORKERS
    (discovery,) = workers["kubernetes_sd_configs"]
    prod = objects("prod", "Deployment")["worker-cpu"]
    assert discovery == {"role": "pod", "namespaces": {"names": [prod["metadata"]["namespace"]]}}
    port_name = kept(workers)["__meta_kubernetes_pod_container_port_name"]
    for name in WORKERS:
        (container,) = objects("prod", "Deployment")[name]["spec"]["template"]["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports[port_name] == int(container_env(container)["CELERY_METRICS_PORT"]), name
    # the port stays inside the cluster: no Service sends traffic to it
    for service in objects("prod", "Service").values():
        assert all(port["targetPort"] != port_name for port in service["spec"]["ports"])


def test_web_and_the_workers_count_in_a_memory_folder_of_their_own_beat_in_none():
    for overlay in ("dev", "prod"):
        for name, deployment in objects(overlay, "Deployment").items():
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            env = container_env(container)
            if name == "beat":
                assert MULTIPROC not in env and "CELERY_METRICS_PORT" not in env
                continue
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == env[MULTIPROC]]
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert volume["emptyDir"]["medium"] == "Memory", name
            # no other mount shares it
            assert [m["name"] for m in container["volumeMounts"]].count(mount["name"]) == 1
        web = objects(overlay, "Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]
        command = web["command"]
        assert command[command.index("-c") + 1] == "config/gunicorn.py"
        assert (ROOT / "config" / "gunicorn.py").is_file()


def test_the_compose_worker_job_scrapes_every_worker_service_on_the_internal_network():
    (config,) = jobs()["spatialprefs-workers-compose"]["static_configs"]
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    targets = dict(target.split(":") for target in config["targets"])
    assert set(targets) == WORKERS
    for name, port in targets.items():
        service = services[name]
        assert service["environment"]["CELERY_METRICS_PORT"] == port
        assert service["expose"] == [port] and "ports" not in service, name
        assert service["tmpfs"] == [service["environment"][MULTIPROC]], name
    assert services["web"]["tmpfs"] == [services["web"]["environment"][MULTIPROC]]
    assert MULTIPROC not in services["beat"]["environment"]
