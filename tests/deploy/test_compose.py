"""deploy/compose.yaml against the Compose specification's JSON schema (check-jsonschema, the
schema vendored in deploy/schemas/), and against the processes of deploy/Procfile."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.procfile import procfile_commands

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    result = _check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_rejects_a_misspelled_key(tmp_path):
    broken = _compose()
    broken["services"]["web"]["healthchek"] = broken["services"]["web"].pop("healthcheck")
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = _check(path)
    assert result.returncode == 1
    assert "healthchek" in result.stdout + result.stderr


def test_every_procfile_process_runs_in_compose_with_its_command():
    services = _compose()["services"]
    procfile = procfile_commands()
    assert set(procfile) == {"web", "worker-cpu", "worker-gpu", "worker-training", "beat"}
    for kind, words in procfile.items():
        command = services[kind]["command"]
        # The Procfile names the GPU by CUDA_VISIBLE_DEVICES; compose pins GPU 0 (gpu0@%h).
        expected = [w.replace("${CUDA_VISIBLE_DEVICES:-0}", "0") for w in words]
        # compose adds gunicorn's log flags (to the container's output); nothing else differs.
        assert command[: len(expected)] == expected, kind
        assert all(flag.startswith("--") or flag == "-" for flag in command[len(expected) :])


def test_worker_cpu_keeps_the_procfile_allocator_settings():
    env = _compose()["services"]["worker-cpu"]["environment"]
    lines = (DEPLOY / "Procfile").read_text().splitlines()
    line = next(x for x in lines if x.startswith("worker-cpu:"))
    for name, value in re.findall(r"([A-Z_]+)=(\S+)", line):
        assert env[name] == value


def test_gpu_worker_reserves_one_nvidia_gpu_and_beat_is_never_replicated():
    services = _compose()["services"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert "replicas" not in services["beat"].get("deploy", {})


def test_every_long_running_service_restarts_and_has_a_health_check():
    for name, service in _compose()["services"].items():
        if service.get("restart") == "no":  # the once-only jobs: migrate, minio-bucket
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name


def test_redis_persists_the_queues():
    redis = _compose()["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_env_example_names_only_settings_the_app_or_compose_reads():
    """Every variable of deploy/.env.example is read by config/settings.py or interpolated in
    compose.yaml; every ${VAR:?...} compose requires is in the example."""
    settings = (ROOT / "config" / "settings.py").read_text()
    compose = COMPOSE.read_text()
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    read_by_settings = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_0-9]+)"', settings))
    interpolated = set(re.findall(r"\$\{([A-Z_0-9]+)", compose))
    assert example - read_by_settings - interpolated == set()
    required = set(re.findall(r"\$\{([A-Z_0-9]+):\?", compose))
    assert required <= example
    assert "SECRET_KEY" in example


def test_references_inside_compose_resolve():
    """What the schema cannot see: depends_on names services, named volumes are declared, bind
    mounts exist in the repository, build targets are stages of deploy/Dockerfile, and every
    app image is built by the service that names its target."""
    compose = _compose()
    services = compose["services"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.M))
    built = {}
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services) - {name}, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: {source}"
        if "build" in service:
            assert service["build"]["target"] in stages
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
            built[service["image"]] = service["build"]["target"]
    for name, service in services.items():
        if service["image"].startswith("${IMAGE_REGISTRY"):
            target = built[service["image"]]  # KeyError: an app image nobody builds
            assert service["image"].split("/")[1].startswith(f"{target}:"), name
