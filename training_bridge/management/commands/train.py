"""`manage.py train start|cancel|status|sweep`: the same services as the admin and the API.

    manage.py train start --dataset spatial --version 1 --config '{"head": "gaussian"}'
    manage.py train start --version-id 7 --config @run.json --set epochs=3 --set lr=0.0005
    manage.py train start --dataset spatial --version 1 --run-now      # train in this process
    manage.py train start --version-id 7 --set launcher=team-vlm-lora --set options.rank=16
    manage.py train cancel 12
    manage.py train status 12 [--json]
    manage.py train sweep                                               # stale heartbeats

`start` queues the run on the `training` queue (the same version and config give the existing
run; --force makes a new attempt); with --run-now it exports the dataset if needed and trains
in this process. `--set options.<name>=value` sets one option of a launcher definition.
Errors name the offending field (`config.backbone: ...`, `config.options.data_path: ...`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import DomainError, ValidationFailed
from config.input_checks import json_loads, text_check
from training_bridge.datasets.selectors.datasets import dataset_version_by_number
from training_bridge.models import DatasetExport
from training_bridge.training.selectors.training import training_run_get
from training_bridge.training.services.training import (
    training_run_cancel,
    training_run_start,
    training_runs_sweep,
)


def _config(raw: str | None, sets: list[str]) -> dict[str, Any]:
    config: Any = {}
    if raw:
        text = raw
        if raw.startswith("@"):
            try:
                text = Path(raw[1:]).read_text()
            except OSError as exc:
                raise CommandError(f"config: cannot read {raw[1:]}: {exc}") from None
        try:
            config = json_loads(text, field="config")  # bounded depth, no NUL or lone surrogate
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from None
        if not isinstance(config, dict):
            raise CommandError("config: must be a JSON object")
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--set: expected key=value, got {item!r}")
        try:
            parsed = json_loads(value, field=f"config.{key}")
        except ValidationFailed as exc:
            if exc.code != "parse_error" or exc.detail.startswith("nests deeper"):
                raise CommandError(str(exc)) from None
            parsed = value  # a bare string: --set backbone=clip
        if isinstance(parsed, str):
            try:
                text_check(parsed, field=f"config.{key}")
            except ValidationFailed as exc:
                raise CommandError(str(exc)) from None
        if key.startswith("options."):
            options = config.setdefault("options", {})
            if not isinstance(options, dict):
                raise CommandError("config.options: must be an object of settings")
            options[key.removeprefix("options.")] = parsed
        else:
            config[key] = parsed
    return config


class Command(BaseCommand):
    help = "Start, cancel and inspect reward-model training runs."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        start = actions.add_parser("start", help="start a run on a frozen dataset version")
        start.add_argument("--version-id", type=int, help="the dataset version's id")
        start.add_argument("--dataset", help="dataset name (with --version)")
        start.add_argument("--version", type=int, help="version number (with --dataset)")
        start.add_argument("--config", help="JSON config, or @file")
        start.add_argument("--set", action="append", default=[], help="key=value (JSON value)")
        start.add_argument("--force", action="store_true", help="a new attempt if it ran")
        start.add_argument("--run-now", action="store_true", help="train in this process")

        cancel = actions.add_parser("cancel", help="cancel a queued or running run")
        cancel.add_argument("run", type=int)

        status = actions.add_parser("status", help="a run's state, progress and summary")
        status.add_argument("run", type=int)
        status.add_argument("--json", action="store_true")

        actions.add_parser("sweep", help="mark failed the runs whose worker stopped beating")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except DomainError as exc:
            raise CommandError(str(exc)) from None

    def _start(self, options: dict[str, Any]) -> None:
        if options["version_id"] is not None:
            version_id = options["version_id"]
        elif options["dataset"] and options["version"] is not None:
            version_id = dataset_version_by_number(
                dataset_name=options["dataset"], number=options["version"]
            ).pk
        else:
            raise CommandError("dataset_version: give --version-id, or --dataset and --version")
        config = _config(options["config"], options["set"])
        started = training_run_start(
            version_id=version_id,
            config=config,
            force=options["force"],
            enqueue=not options["run_now"],
        )
        run = started.run
        verb = "started" if started.created else "exists"
        self.stdout.write(f"run {run.pk} {verb}: {run.status} (attempt {run.attempt})")
        if options["run_now"] and run.status == "queued":
            self._run_now(run.pk)

    def _run_now(self, run_id: int) -> None:
        from training_bridge.datasets.services.exports import dataset_export_run
        from training_bridge.orchestration import training_run_execute_and_register

        run = training_run_get(run_id=run_id)
        export = DatasetExport.objects.filter(
            version_id=run.dataset_version_id,
            format=run.config.get("dataset_format", "parquet"),
            include_images=True,
        ).first()
        if export is not None and export.status != DatasetExport.Status.DONE:
            self.stdout.write(f"exporting {export.format} first (export {export.pk})")
            dataset_export_run(export_id=export.pk)
        run = training_run_execute_and_register(run_id=run_id)
        self.stdout.write(f"run {run.pk}: {run.status}")
        if run.status != "succeeded":
            raise CommandError(f"run {run.pk} {run.status}: {run.error}")
        self.stdout.write(json.dumps(run.summary, indent=1, sort_keys=True))

    def _cancel(self, options: dict[str, Any]) -> None:
        run = training_run_cancel(run_id=options["run"])
        note = "" if run.status == "cancelled" else " (stops at the next step)"
        self.stdout.write(f"run {run.pk}: cancel requested{note}")

    def _status(self, options: dict[str, Any]) -> None:
        run = training_run_get(run_id=options["run"])
        data = {
            "id": run.pk,
            "status": run.status,
            "dataset_version": run.dataset_version_id,
            "attempt": run.attempt,
            "step": run.step,
            "total_steps": run.total_steps,
            "epoch": run.epoch,
            "summary": run.summary,
            "error": run.error,
            "artifacts": [a["key"] for a in run.artifacts],
        }
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=1, sort_keys=True))
            return
        self.stdout.write(
            f"run {run.pk} on version {run.dataset_version_id}: {run.status}, "
            f"step {run.step}/{run.total_steps or '?'}, epoch {run.epoch}"
        )
        if run.error:
            self.stdout.write(f"error: {run.error}")

    def _sweep(self, options: dict[str, Any]) -> None:
        self.stdout.write(f"{training_runs_sweep()} stale run(s) marked failed")
