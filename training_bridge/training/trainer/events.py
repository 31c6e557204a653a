"""What the trainer tells its launcher, and how the launcher stops it.

Metrics go to `<output_dir>/metrics.jsonl`, one JSON object per line, flushed as written, so
the launcher can tail the file while the run goes on. The same format is what an external
command writes (see docs/architecture.md):

    {"name": "train/loss", "step": 12, "epoch": 1, "value": 0.6931}
    {"progress": {"step": 12, "total_steps": 300, "epoch": 1, "epochs": 5}}

A run stops at the next step check when the cancel file exists, on SIGTERM/SIGINT, or when
its parent process (the launcher) is gone.

Every metric also goes to the run's other sinks (TensorBoard event files, MLflow, W&B:
tracking.py), which `close` ends with the run's outcome.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from training_bridge.training.trainer.tracking import MetricSink

METRICS_FILE = "metrics.jsonl"


def lines_since(path: Path, offset: int) -> tuple[int, list[bytes]]:
    """The complete lines written to `path` after byte `offset`, and the offset after them: how
    a reader tails the metrics file while the trainer appends (a line still being written waits
    for the next call). No file yet: nothing."""
    if not path.exists():
        return offset, []
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n")
    if end < 0:
        return offset, []
    return offset + end + 1, data[:end].splitlines()


class Stopped(Exception):
    """The run was asked to stop (cancelled) or lost its launcher."""


class Events:
    def __init__(
        self,
        output_dir: Path,
        *,
        write: bool = True,
        cancel_file: Path | None = None,
        sinks: Sequence[MetricSink] = (),
    ):
        self.cancel_file = cancel_file
        self._sinks = list(sinks)
        self._signalled = False
        self._parent = os.getppid()
        self._file: TextIO | None = None
        if write:
            output_dir.mkdir(parents=True, exist_ok=True)
            self._file = (output_dir / METRICS_FILE).open("a", encoding="utf-8")

    def signals_install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self._signalled = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _line(self, payload: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(payload, sort_keys=True) + "\n")
            self._file.flush()

    def metric(self, name: str, value: float, *, step: int, epoch: int | None = None) -> None:
        if not math.isfinite(value):
            value = float("nan")
        line: dict[str, Any] = {"name": name, "step": step, "value": value}
        if epoch is not None:
            line["epoch"] = epoch
        self._line(line)
        for sink in self._sinks:
            sink.scalar(name, value, step=step)

    def metrics(self, values: dict[str, float], *, step: int, epoch: int | None = None) -> None:
        for name, value in values.items():
            self.metric(name, value, step=step, epoch=epoch)

    def progress(self, *, step: int, total_steps: int, epoch: int, epochs: int) -> None:
        self._line(
            {
                "progress": {
                    "step": step,
                    "total_steps": total_steps,
                    "epoch": epoch,
                    "epochs": epochs,
                }
            }
        )

    def stop_reason(self) -> str | None:
        if self._signalled:
            return "stopped by a signal"
        if self.cancel_file is not None and self.cancel_file.exists():
            return "cancelled"
        if os.getppid() != self._parent:
            return "the launcher process is gone"
        return None

    def close(self, *, outcome: str = "finished") -> None:
        """outcome: finished, failed or stopped (how the trackers mark their run)."""
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.close(outcome=outcome)
        if self._file is not None:
            self._file.close()
            self._file = None
