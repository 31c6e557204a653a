"""`manage.py training_launchers load FILE | list`: the launcher definitions training runs may
pick, written from a file by whoever runs manage.py on a server (an admin).

    manage.py training_launchers load deploy/launchers.yaml    # YAML or JSON (by extension)
    manage.py training_launchers load launchers.json --dry-run # check only
    manage.py training_launchers list

The file holds `launchers:`, a list of definitions (name, argv, and optionally description,
environment, passthrough_env, enabled). Loading is idempotent by name: a definition is created,
updated or left unchanged; definitions not in the file are kept. A bad file is a CommandError
naming the field (`launchers[1].environment.SECRET_KEY: ...`) and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from config.errors import DomainError, ValidationFailed
from config.input_checks import json_check
from training_bridge.training.selectors.training import training_launchers_list
from training_bridge.training.services.launcher_definitions import (
    argv_placeholders,
    training_launchers_load,
)


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"file: cannot read {path}: {exc}") from None
    kind = "JSON" if path.endswith(".json") else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except RecursionError:  # both readers descend into nested lists and mappings recursively
        raise CommandError(f"file: {path} is nested too deeply") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CommandError(f"file: {path} is not valid {kind}: {exc}") from None
    try:
        return json_check(data, field="")  # no NUL or lone surrogate, bounded depth
    except ValidationFailed as exc:
        raise CommandError(str(exc)) from None


class _DryRun(Exception):
    pass


class Command(BaseCommand):
    help = "Load (create or update by name) or list the training launcher definitions."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        load = actions.add_parser("load", help="create or update definitions from a file")
        load.add_argument("file", help="a YAML (.yaml/.yml) or JSON (.json) file")
        load.add_argument("--dry-run", action="store_true", help="check, write nothing")
        actions.add_parser("list", help="the definitions (names of variables, never values)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except DomainError as exc:
            raise CommandError(str(exc)) from None

    def _load(self, options: dict[str, Any]) -> None:
        data = _read(options["file"])
        try:
            with transaction.atomic():
                results = training_launchers_load(data=data)
                if options["dry_run"]:
                    raise _DryRun
        except _DryRun:
            pass
        for launcher, what in results:
            self.stdout.write(f"{launcher.name}: {what}")
        if options["dry_run"]:
            self.stdout.write("dry run: nothing written")

    def _list(self, options: dict[str, Any]) -> None:
        for launcher in training_launchers_list():
            state = "enabled" if launcher.enabled else "disabled"
            names = sorted([*launcher.environment, *launcher.passthrough_env])
            self.stdout.write(
                f"{launcher.name} ({state}): {json.dumps(launcher.argv)}"
                f"  placeholders={','.join(argv_placeholders(launcher.argv)) or '-'}"
                f"  env={','.join(names) or '-'}"
            )
