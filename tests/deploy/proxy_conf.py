"""The shipped proxy configuration (deploy/proxy/nginx.conf and internal-files.conf) made
runnable by a test nginx: only the addresses change (loopback ports for 80/443, the compose
services' hosts, the mounted folders, the certificate, pid and temporary files). Each
replaced text must occur exactly once, so an edit of the shipped files that moves one fails
here instead of leaving a test that runs something else."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "proxy"
NGINX_CONF = PROXY / "nginx.conf"
INTERNAL_FILES_CONF = PROXY / "internal-files.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _replace_once(text: str, old: str, new: str, where: str) -> str:
    assert text.count(old) == 1, f"{where}: expected {old!r} once"
    return text.replace(old, new)


def certificate_make(folder: Path) -> Path:
    """A self-signed certificate for `localhost` (fullchain.pem, privkey.pem) in folder/certs."""
    certs = folder / "certs"
    certs.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost"]
        + ["-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certs


def proxy_conf_write(
    folder: Path,
    *,
    web: str,
    store: str,
    media: Path,
    static: Path,
    https_port: int,
    http_port: int,
    nginx_conf: str | None = None,
) -> Path:
    """nginx.conf and internal-files.conf in `folder` for `nginx -p folder -c <returned path>`:
    gunicorn at `web`, the object store at `store` (host:port), local files under `media`."""
    certs = certificate_make(folder)
    temp = folder / "temp"
    temp.mkdir()
    conf = NGINX_CONF.read_text() if nginx_conf is None else nginx_conf
    where = "nginx.conf"
    conf = _replace_once(conf, "pid /tmp/nginx.pid;", f"pid {folder}/nginx.pid;", where)
    conf = conf.replace("/etc/nginx/certs/", f"{certs}/")
    conf = _replace_once(conf, "server web:8000;", f"server {web};", where)
    conf = _replace_once(
        conf, "listen 80 default_server;", f"listen 127.0.0.1:{http_port} default_server;", where
    )
    conf = _replace_once(conf, "listen [::]:80 default_server;", "", where)
    conf = _replace_once(
        conf,
        "listen 443 ssl http2 default_server;",
        f"listen 127.0.0.1:{https_port} ssl http2 default_server;",
        where,
    )
    conf = _replace_once(conf, "listen [::]:443 ssl http2 default_server;", "", where)
    conf = _replace_once(conf, "alias /srv/static/;", f"alias {static}/;", where)
    temp_paths = "".join(
        f"\n    {kind}_temp_path {temp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = _replace_once(conf, "http {", "http {" + temp_paths, where)
    (folder / "nginx.conf").write_text(conf)

    internal = INTERNAL_FILES_CONF.read_text()
    where = "internal-files.conf"
    internal = _replace_once(internal, "alias /srv/media/;", f"alias {media}/;", where)
    internal = _replace_once(
        internal, "proxy_pass http://minio:9000/;", f"proxy_pass http://{store}/;", where
    )
    (folder / "internal-files.conf").write_text(internal)
    return folder / "nginx.conf"


def nginx_command(folder: Path, conf: Path, *extra: str) -> list[str]:
    directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    return [shutil.which("nginx"), "-p", str(folder), "-c", str(conf), "-g", directives, *extra]


@contextmanager
def nginx_running(folder: Path, conf: Path, *, port: int) -> Iterator[Path]:
    """nginx in the foreground on `conf` until the block ends; yields its log file."""
    log = folder / "nginx.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(nginx_command(folder, conf), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=10)
