"""gunicorn's hooks for prometheus_client's multiprocess mode (deploy/Procfile: `-c` names this
file; the command line keeps every other option).

With PROMETHEUS_MULTIPROC_DIR set, every worker writes its counters to files in that folder and
/metrics sums them (config/metrics.py). The folder must hold no file of an earlier run: the
master empties it before forking (a container restarted inside its pod keeps its emptyDir), and
a worker that exits is marked dead so that its live gauges leave the sums. Without the variable
both hooks do nothing.

Loaded by path, not as `config.gunicorn`: importing the `config` package would load the Celery
app and Django into the master.
"""

import os
from pathlib import Path


def _multiprocess_dir() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder else None


def on_starting(server) -> None:
    folder = _multiprocess_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    # prometheus_client's files only (counter_<pid>.db, gauge_livesum_<pid>.db, ...)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    if _multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
