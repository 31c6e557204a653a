"""deploy/proxy/nginx.conf: `nginx -t` accepts it (where nginx is installed), and it agrees with
compose.yaml and the settings on the upstream, the static folder and the forwarded scheme."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests.deploy.proxy_conf import (
    INTERNAL_FILES_CONF,
    ROOT,
    free_port,
    nginx_command,
    proxy_conf_write,
)

CONF = ROOT / "deploy" / "proxy" / "nginx.conf"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def _nginx_test(tmp_path: Path, conf: str) -> subprocess.CompletedProcess:
    """nginx -t on the file (and its internal-files.conf), with a fresh self-signed certificate
    and the compose services' hosts on the loopback address (nginx resolves them at load)."""
    tmp_path.mkdir()
    path = proxy_conf_write(
        tmp_path,
        web="127.0.0.1:8000",
        store="127.0.0.1:9000",
        media=tmp_path / "media",
        static=tmp_path / "static",
        https_port=free_port(),
        http_port=free_port(),
        nginx_conf=conf,
    )
    return subprocess.run(
        nginx_command(tmp_path, path, "-t", "-q"), capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(
    not shutil.which("nginx"), reason="nginx is not installed (apt-get install nginx)"
)
def test_nginx_accepts_the_configuration_and_refuses_a_broken_one(tmp_path):
    conf = CONF.read_text()
    result = _nginx_test(tmp_path / "good", conf)
    assert result.returncode == 0, result.stderr
    broken = _nginx_test(tmp_path / "bad", conf.replace("proxy_pass ", "proxy_passs "))
    assert broken.returncode != 0 and "proxy_passs" in broken.stderr


def test_the_proxy_serves_compose_web_and_its_static_volume():
    conf = CONF.read_text()
    services = _compose()["services"]
    upstream = re.search(r"server (\S+):(\d+);", conf)
    assert upstream.group(1) in services
    assert f"0.0.0.0:{upstream.group(2)}" in services[upstream.group(1)]["command"]
    static = re.search(r"location /(\S+)/ \{\s*alias (\S+);", conf)
    assert f"/{static.group(1)}/" == settings.STATIC_URL
    proxy_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["proxy"]["volumes"]}
    migrate_mounts = {v.split(":")[0]: v.split(":")[1] for v in services["migrate"]["volumes"]}
    volume = proxy_mounts[static.group(2).rstrip("/")]
    # collectstatic's folder (STATIC_ROOT under SPATIALPREFS_VAR_DIR) is the volume nginx reads.
    var_dir = services["migrate"]["environment"]["SPATIALPREFS_VAR_DIR"]
    assert migrate_mounts[volume] == f"{var_dir}/{Path(settings.STATIC_ROOT).name}"
    assert "./proxy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]


def test_the_proxy_forwards_https_as_the_app_trusts_and_lets_the_apps_limits_answer():
    conf = CONF.read_text()
    header, value = settings.SECURE_PROXY_SSL_HEADER
    assert header == "HTTP_X_FORWARDED_PROTO" and value == "https"
    assert "proxy_set_header X-Forwarded-Proto https;" in conf
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert int(size.group(1)) * 1024 * 1024 > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert "return 301 https://" in conf


def test_compose_hands_stored_files_to_the_proxys_internal_store_location():
    # Given compose's app settings and the proxy's internal locations
    services = _compose()["services"]
    env = services["web"]["environment"]
    internal = INTERNAL_FILES_CONF.read_text()
    locations = dict(re.findall(r"location (/\S+/) \{(.*?)\n\}", internal, re.S))
    # Then the prefix the app sends is an internal location that reads the app's storage: the
    # object store at the endpoint the app signs for
    assert env["STORAGE_BACKEND"] == "s3"
    store = locations[env["STORAGE_ACCEL_REDIRECT"]]
    assert "    internal;" in store
    endpoint = re.search(r"proxy_pass (\S+);", store).group(1)
    assert endpoint == env["S3_ENDPOINT_URL"] + "/"
    assert "    internal;" in locations["/_media/"]
    # and the proxy reads the file nginx.conf includes, beside it
    assert "include internal-files.conf;" in CONF.read_text()
    assert (
        "./proxy/internal-files.conf:/etc/nginx/internal-files.conf:ro"
        in (services["proxy"]["volumes"])
    )
