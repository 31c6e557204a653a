"""The entrypoint of a training run's Kubernetes pod (no Django, no storage credentials):

    python -m training_bridge.training.trainer.job --plan /etc/spatialprefs-run/plan.json \\
        --work /work -- python -m training_bridge.training.trainer --dataset-dir /work/dataset ...

The training worker renders the Job (training/services/kubernetes.py) and a run-scoped Secret
holding `plan.json` and the trainer's `config.json`. The plan is

    {"dataset": [{"name": "parquet/train.parquet", "url": "<presigned GET>"}, ...],
     "manifest": {...the version's manifest...},
     "output_url": "<presigned PUT>"}

This entrypoint downloads the export's files into `<work>/dataset/` (and writes
manifest.json beside them, as the worker does for a local run), runs the command after `--`
(the trainer, under torchrun when the run takes several GPUs), and while it runs copies each
new line of `<work>/output/metrics.jsonl` to stdout behind METRIC_MARKER: the pod's log is the
one channel the worker follows, and it sorts the marked lines back into a metrics file that
the same code as a local run reads. On exit 0 the output folder goes up as one gzipped tar to
the presigned PUT URL; the worker unpacks it and stores its files as every run's artifacts.

A SIGTERM (the worker deleted the Job: the run was cancelled) is passed on to the command,
whose trainer stops at its next step check. Exit status: the command's, or EXIT_TRANSFER when
the dataset could not be fetched or the output not sent (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

from training_bridge.training.trainer.events import METRICS_FILE, lines_since

METRIC_MARKER = "@spatialprefs-metric "
EXIT_TRANSFER = 4
ECHO_SECONDS = 1.0
TRANSFER_TIMEOUT_SECONDS = 300


class TransferFailed(Exception):
    pass


def _relative(name: Any) -> PurePosixPath:
    """An export file's name as a path that stays inside the dataset folder."""
    path = PurePosixPath(name) if isinstance(name, str) else None
    if path is None or not path.parts or path.is_absolute() or ".." in path.parts:
        raise TransferFailed(f"the plan names a dataset file outside the folder: {name!r}")
    return path


def dataset_download(plan: dict[str, Any], dataset_dir: Path) -> int:
    """The plan's files into dataset_dir (and its manifest.json); returns how many."""
    files = plan.get("dataset")
    if not isinstance(files, list):
        raise TransferFailed("the plan has no dataset list")
    for item in files:
        target = dataset_dir / _relative(item.get("name"))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (
                urllib.request.urlopen(item["url"], timeout=TRANSFER_TIMEOUT_SECONDS) as source,  # noqa: S310 - the worker's presigned https URL
                target.open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink, 1 << 20)
        except OSError as exc:
            raise TransferFailed(f"downloading {item.get('name')}: {exc}") from None
    (dataset_dir / "manifest.json").write_text(json.dumps(plan.get("manifest") or {}, indent=1))
    return len(files)


def output_upload(output_dir: Path, url: str, work: Path) -> int:
    """The output folder as one gzipped tar, PUT to the presigned URL; returns its size."""
    archive = work / "output.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(output_dir).as_posix())
    size = archive.stat().st_size
    with archive.open("rb") as body:
        request = urllib.request.Request(  # noqa: S310 - the worker's presigned https URL
            url,
            data=body,
            method="PUT",
            headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
        )
        try:
            with urllib.request.urlopen(request, timeout=TRANSFER_TIMEOUT_SECONDS) as response:  # noqa: S310
                response.read()
        except OSError as exc:
            raise TransferFailed(f"uploading the output ({size} bytes): {exc}") from None
    return size


class MetricsEcho:
    """Copies each new complete line of the metrics file to `out` behind METRIC_MARKER."""

    def __init__(self, path: Path, out: Any) -> None:
        self.path = path
        self.out = out
        self._offset = 0

    def pump(self) -> int:
        self._offset, lines = lines_since(self.path, self._offset)
        if not lines:
            return 0
        for line in lines:
            self.out.write(METRIC_MARKER + line.decode("utf-8", errors="replace") + "\n")
        self.out.flush()
        return len(lines)


def command_run(argv: list[str], *, output_dir: Path, out: Any = None) -> int:
    """Run argv with the pod's stdout and stderr, echoing its metrics; pass SIGTERM on."""
    out = out or sys.stdout
    echo = MetricsEcho(output_dir / METRICS_FILE, out)
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603

    def forward(signum: int, frame: Any) -> None:
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
    while True:
        code = child.poll()
        echo.pump()
        if code is not None:
            return code
        time.sleep(ECHO_SECONDS)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: job --plan PLAN --work DIR -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m training_bridge.training.trainer.job")
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    plan = json.loads(args.plan.read_text())
    dataset_dir, output_dir = args.work / "dataset", args.work / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        count = dataset_download(plan, dataset_dir)
    except TransferFailed as exc:
        print(f"job.dataset_failed {exc}", file=sys.stderr, flush=True)
        return EXIT_TRANSFER
    print(f"job.dataset {count} files in {dataset_dir}", flush=True)
    code = command_run(command, output_dir=output_dir)
    if code != 0:
        return code
    try:
        size = output_upload(output_dir, plan["output_url"], args.work)
    except TransferFailed as exc:
        print(f"job.output_failed {exc}", file=sys.stderr, flush=True)
        return EXIT_TRANSFER
    print(f"job.output sent {size} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
