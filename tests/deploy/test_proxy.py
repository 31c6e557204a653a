"""deploy/proxy/nginx.conf: `nginx -t` accepts it (where nginx is installed), and it agrees with
compose.yaml and the settings on the upstream, the static folder and the forwarded scheme."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "proxy" / "nginx.conf"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def _nginx_test(tmp_path: Path, conf: str) -> subprocess.CompletedProcess:
    """nginx -t on the file, with a fresh self-signed certificate at the certificate paths and
    the compose service name resolved to the loopback address (nginx resolves it at load)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(certs / "privkey.pem")]
        + ["-out", str(certs / "fullchain.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    conf = conf.replace("/etc/nginx/certs/", f"{certs}/").replace(
        "server web:", "server 127.0.0.1:"
    )
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    return subprocess.run(
        [shutil.which("nginx"), "-t", "-q", "-p", str(tmp_path), "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(
    not shutil.which("nginx"), reason="nginx is not installed (apt-get install nginx)"
)
def test_nginx_accepts_the_configuration_and_refuses_a_broken_one(tmp_path):
    conf = CONF.read_text()
    (tmp_path / "good").mkdir()
    result = _nginx_test(tmp_path / "good", conf)
    assert result.returncode == 0, result.stderr
    (tmp_path / "bad").mkdir()
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
