"""Worker-side work of training runs that is no message: every worker marks failed the running
runs whose heartbeat went stale. The run itself is the `training_bridge.training_run.execute`
task (training_bridge/tasks.py), which also registers a succeeded run's reward model.

A run is NOT acknowledged late: a crashed worker must not start the same (hours-long) run
again behind the user's back. Its run is marked failed by the stale-heartbeat sweep that every
worker runs (TrainingSweeper below); starting it again with force makes a new attempt.
"""

import logging

from celery import bootsteps
from django.db import DatabaseError, connection

from config.celery import app
from training_bridge.training.services.training import stale_seconds, training_runs_sweep

log = logging.getLogger(__name__)


def training_sweep_tick() -> None:
    """One stale-heartbeat sweep from a worker's main process (its connection closed again, so
    that no pool process forked later inherits it)."""
    try:
        training_runs_sweep()
    except DatabaseError:
        log.warning("training.sweep.failed", exc_info=True)
    finally:
        connection.close()


class TrainingSweeper(bootsteps.StartStopStep):
    """Every worker marks failed the running runs whose heartbeat went stale (a third of the
    stale limit apart), so a crashed training worker never leaves a run 'running'."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        interval = max(1.0, stale_seconds() / 3)
        self.tref = worker.timer.call_repeatedly(interval, training_sweep_tick, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(TrainingSweeper)
