"""The embedded PostgreSQL (deploy/dev/embedded_db.py): `make test` falls back to it when no
database answers, and `make demo` runs on it, keeps its data between runs and leaves nothing
running when it stops (Ctrl-C, or its gunicorn dying).

Each test uses its own var folder (SPATIALPREFS_VAR_DIR), not under pytest's temp root: the
server runs as another user when the tests run as root, and that root is closed to others.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.conftest import database_url_of_test

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
PRINT_AND_QUERY = (
    "import os, psycopg; url = os.environ['DATABASE_URL']; "
    "psycopg.connect(url, dbname='postgres').execute('SELECT 1').close(); print(url)"
)


@pytest.fixture
def var_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sp-var-"))
    yield folder
    subprocess.run(
        [PYTHON, "deploy/dev/embedded_db.py", "stop"], cwd=REPO, env=_env(folder), timeout=60
    )
    shutil.rmtree(folder, ignore_errors=True)


def _env(var: Path, **extra: str) -> dict[str, str]:
    drop = ("DATABASE_URL", "MEDIA_ROOT", "STORAGE_BACKEND", "DEMO_SEED", "DEMO_PORT")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    return {**env, "SPATIALPREFS_VAR_DIR": str(var), **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_of(var: Path, port: int | None = None) -> list[str]:
    """Command lines of the processes that name this var folder (the server, the worker) or
    listen on this port (gunicorn)."""
    marks = [str(var)] + ([f"127.0.0.1:{port}"] if port else [])
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        line = " ".join(process.info["cmdline"] or [])
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(m in line for m in marks):
            found.append(f"{process.info['pid']} {line}")
    return found


def _embedded_running(var: Path) -> bool:
    status = subprocess.run(
        [PYTHON, "deploy/dev/embedded_db.py", "status"], cwd=REPO, env=_env(var), timeout=60
    )
    return status.returncode == 0


def test_without_an_answering_database_the_suite_gets_the_embedded_server_and_it_stops_after(
    var_dir,
):
    closed = f"postgres://postgres@127.0.0.1:{_free_port()}/spatialprefs"

    done = subprocess.run(
        ["bash", "deploy/dev/ensure-services.sh", "--database", closed, "--",
         PYTHON, "-c", PRINT_AND_QUERY],
        cwd=REPO, env=_env(var_dir), capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    embedded = f"postgres://postgres@/spatialprefs?host={var_dir.resolve()}/postgres"
    assert done.stdout.strip() == embedded
    assert "using the embedded server" in done.stderr
    assert (var_dir / "postgres" / "PG_VERSION").exists()
    assert not _embedded_running(var_dir)
    assert _processes_of(var_dir) == []


@pytest.mark.django_db
def test_an_answering_database_is_used_as_given_and_nothing_is_started(var_dir):
    url = database_url_of_test()

    done = subprocess.run(
        ["bash", "deploy/dev/ensure-services.sh", "--database", url, "--",
         PYTHON, "-c", PRINT_AND_QUERY],
        cwd=REPO, env=_env(var_dir), capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == url
    assert not (var_dir / "postgres").exists()


def test_a_command_that_fails_keeps_its_status_and_the_server_still_stops(var_dir):
    closed = f"postgres://postgres@127.0.0.1:{_free_port()}/spatialprefs"

    done = subprocess.run(
        ["bash", "deploy/dev/ensure-services.sh", "--database", closed, "--",
         PYTHON, "-c", "raise SystemExit(3)"],
        cwd=REPO, env=_env(var_dir), capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert done.returncode == 3
    assert not _embedded_running(var_dir)


# --- make demo ------------------------------------------------------------------------------


def _demo_start(var: Path, port: int, log: Path) -> subprocess.Popen:
    """deploy/dev/demo.sh without seeding, as from a terminal: its own process group, Ctrl-C
    (SIGINT) not ignored."""
    return subprocess.Popen(
        ["bash", "deploy/dev/demo.sh"],
        cwd=REPO,
        env=_env(var, DEMO_SEED="0", DEMO_PORT=str(port)),
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _health(port: int, demo: subprocess.Popen, log: Path, seconds: float = 240) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert demo.poll() is None, log.read_text()[-3000:]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/health/")
            return json.loads(conn.getresponse().read())
        except OSError:
            time.sleep(0.5)
        finally:
            conn.close()
    raise AssertionError(f"the demo did not answer; its log:\n{log.read_text()[-3000:]}")


def _ended(demo: subprocess.Popen, log: Path) -> int:
    try:
        return demo.wait(timeout=60)
    except subprocess.TimeoutExpired as exc:
        demo.kill()
        raise AssertionError(f"the demo did not stop; its log:\n{log.read_text()[-3000:]}") from exc


@pytest.mark.worker
def test_the_demo_runs_on_the_embedded_server_keeps_its_data_and_leaves_nothing_running(
    var_dir,
):
    port, log = _free_port(), var_dir / "demo.log"
    url = f"postgres://postgres@/spatialprefs?host={var_dir.resolve()}/postgres"

    # given a demo serving on the embedded server, where something was written
    demo = _demo_start(var_dir, port, log)
    assert _health(port, demo, log) == {"status": "ok", "database": "postgresql"}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept_between_runs (note text)")
        conn.execute("INSERT INTO kept_between_runs VALUES ('first run')")

    # when Ctrl-C is pressed: everything stops
    os.killpg(demo.pid, signal.SIGINT)
    assert _ended(demo, log) == 130
    assert _processes_of(var_dir, port) == []
    assert not _embedded_running(var_dir)

    # when the demo runs again: the same data, and gunicorn dying stops everything too
    demo = _demo_start(var_dir, port, log)
    assert _health(port, demo, log) == {"status": "ok", "database": "postgresql"}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT note FROM kept_between_runs").fetchall() == [("first run",)]
    os.kill(int((var_dir / "demo-web.pid").read_text()), signal.SIGKILL)
    assert _ended(demo, log) != 0
    assert _processes_of(var_dir, port) == []
    assert not _embedded_running(var_dir)
