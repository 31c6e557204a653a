"""Launcher definitions: the only commands a training run may execute.

A superuser defines them (the admin, or `manage.py training_launchers load FILE`); an ML
engineer picks one by name in a run's config and gives it data (`options`), never a command
line. A definition is checked whenever it is saved and again before a run uses it:

- `argv`: a non-empty list of strings; argv[0] an absolute path or a bare program name (looked
  up on the child's PATH), with no placeholder; placeholders only {dataset_dir}, {output_dir},
  {config_file} and {run_id}, each a whole element or a clear part of one ("--out={output_dir}",
  "{dataset_dir}/parquet"): every brace belongs to a known placeholder;
- `environment` ({NAME: value}) and `passthrough_env` ([NAME], copied from the worker's
  environment when set there): names match [A-Z_][A-Z0-9_]*, are never the worker's secrets
  (`secret_env_names`) nor the SPATIALPREFS_ variables the launcher sets itself; values are
  one line of text.

Errors are ValidationFailed naming the field (`argv[2]`, `environment.SECRET_KEY`); the load
command prefixes them with the definition's place in the file (`launchers[1].argv`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from config.errors import ValidationFailed
from training_bridge.models import TrainingLauncher, TrainingRun

log = logging.getLogger(__name__)

PLACEHOLDERS = ("dataset_dir", "output_dir", "config_file", "run_id")
RESERVED_NAMES = tuple(choice.value for choice in TrainingRun.Launcher)
# What the web and worker processes hold that a training command must never see.
SECRET_ENV = frozenset(
    {
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
    }
)
RESERVED_ENV_PREFIX = "SPATIALPREFS_"  # the launcher sets these itself
FIELDS = ("name", "description", "argv", "environment", "passthrough_env", "enabled")
MAX_ARGV = 256
MAX_TEXT = 4096
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_.+-]+$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def secret_env_names() -> frozenset[str]:
    """SECRET_ENV and the names settings.TRAINING_LAUNCHER_SECRET_ENV adds."""
    extra = getattr(settings, "TRAINING_LAUNCHER_SECRET_ENV", ()) or ()
    return SECRET_ENV | frozenset(extra)


def argv_placeholders(argv: list[str]) -> list[str]:
    """The placeholders an argv template uses, in the order of PLACEHOLDERS."""
    used = {name for part in argv for name in _PLACEHOLDER.findall(part)}
    return [name for name in PLACEHOLDERS if name in used]


def argv_fill(argv: list[str], values: Mapping[str, str]) -> list[str]:
    """The template with its placeholders filled; nothing else is ever put into argv."""
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in argv]


def _text(value: Any, field: str, *, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{what} must be a string, got {value!r}", field=field)
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ValidationFailed(f"{what} must be one line of text (no NUL or newline)", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(f"{what} is not valid text", field=field) from None
    if len(value) > MAX_TEXT:
        raise ValidationFailed(f"{what} is longer than {MAX_TEXT} characters", field=field)
    return value


def _argv_clean(argv: Any) -> list[str]:
    if not isinstance(argv, list) or not argv:
        raise ValidationFailed(
            'must be a non-empty list of strings, e.g. ["/opt/rm/train.sh", "--data", '
            '"{dataset_dir}"]',
            field="argv",
        )
    if len(argv) > MAX_ARGV:
        raise ValidationFailed(f"has more than {MAX_ARGV} elements", field="argv")
    clean = [_text(part, f"argv[{i}]", what="an argument") for i, part in enumerate(argv)]
    program = clean[0]
    if "{" in program or "}" in program:
        raise ValidationFailed("the program cannot hold a placeholder", field="argv[0]")
    if not (os.path.isabs(program) or _PROGRAM.match(program)):
        raise ValidationFailed(
            f"{program!r} must be an absolute path (/opt/rm/train.sh) or a bare program name "
            "found on PATH (torchrun): a relative path depends on the folder the run starts in",
            field="argv[0]",
        )
    allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    for i, part in enumerate(clean[1:], start=1):
        for name in _PLACEHOLDER.findall(part):
            if name not in PLACEHOLDERS:
                raise ValidationFailed(
                    f"unknown placeholder {{{name}}}; use {allowed}", field=f"argv[{i}]"
                )
        if "{" in _PLACEHOLDER.sub("", part) or "}" in _PLACEHOLDER.sub("", part):
            raise ValidationFailed(
                f"{part!r} has a brace outside a placeholder; use {allowed} whole",
                field=f"argv[{i}]",
            )
    return clean


def _env_name_check(name: Any, field: str) -> str:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValidationFailed(
            f"{name!r} is not a variable name (letters A-Z, digits and _, not starting with a "
            "digit)",
            field=field,
        )
    if name in secret_env_names():
        raise ValidationFailed(
            f"{name} is one of the worker's secrets and never reaches a training command",
            field=field,
        )
    if name.startswith(RESERVED_ENV_PREFIX):
        raise ValidationFailed(
            f"{name}: the launcher sets the {RESERVED_ENV_PREFIX} variables itself", field=field
        )
    return name


def _environment_clean(environment: Any) -> dict[str, str]:
    if environment is None:
        return {}
    if not isinstance(environment, dict):
        raise ValidationFailed('must be an object {"NAME": "value"}', field="environment")
    clean: dict[str, str] = {}
    for name, value in environment.items():
        field = f"environment.{name}"
        _env_name_check(name, field)
        clean[name] = _text(value, field, what="a value")
    return dict(sorted(clean.items()))


def _passthrough_clean(names: Any, environment: dict[str, str]) -> list[str]:
    if names is None:
        return []
    if not isinstance(names, list):
        raise ValidationFailed('must be a list of variable names, e.g. ["CUDA_VISIBLE_DEVICES"]',
                               field="passthrough_env")  # fmt: skip
    clean: list[str] = []
    for i, name in enumerate(names):
        field = f"passthrough_env[{i}]"
        _env_name_check(name, field)
        if name in environment:
            raise ValidationFailed(f"{name} is set in environment already", field=field)
        if name not in clean:
            clean.append(name)
    return clean


@dataclass(frozen=True)
class LauncherDefinition:
    name: str
    description: str
    argv: list[str]
    environment: dict[str, str]
    passthrough_env: list[str]
    enabled: bool

    def as_fields(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in FIELDS}


def training_launcher_clean(
    *,
    name: Any,
    argv: Any,
    description: Any = "",
    environment: Any = None,
    passthrough_env: Any = None,
    enabled: Any = True,
) -> LauncherDefinition:
    """A definition checked and normalised (see the module docstring)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationFailed(
            "a name of 1 to 64 lowercase letters, digits, '-' or '_' is required", field="name"
        )
    if name in RESERVED_NAMES:
        raise ValidationFailed(f"{name!r} is reserved; pick another name", field="name")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_TEXT or "\x00" in description:
        raise ValidationFailed(f"must be text of at most {MAX_TEXT} characters",
                               field="description")  # fmt: skip
    if not isinstance(enabled, bool):
        raise ValidationFailed("must be true or false", field="enabled")
    clean_env = _environment_clean(environment)
    return LauncherDefinition(
        name=name,
        description=description,
        argv=_argv_clean(argv),
        environment=clean_env,
        passthrough_env=_passthrough_clean(passthrough_env, clean_env),
        enabled=enabled,
    )


def training_launcher_check(*, launcher: TrainingLauncher) -> LauncherDefinition:
    """A stored definition checked again before a run uses it: rows written past the services,
    or names the settings marked secret since it was saved, fail the run instead of leaking."""
    return training_launcher_clean(**{field: getattr(launcher, field) for field in FIELDS})


def training_launcher_save(
    *, definition: LauncherDefinition, launcher_id: int | None = None
) -> tuple[TrainingLauncher, str]:
    """Create or update a definition (by id, else by name). Returns it and what happened:
    "created", "updated" or "unchanged"."""
    fields = definition.as_fields()
    with transaction.atomic():
        if launcher_id is not None:
            launcher = TrainingLauncher.objects.select_for_update().filter(pk=launcher_id).first()
            if launcher is None:
                raise ValidationFailed(f"no launcher {launcher_id}", field="launcher")
        else:
            launcher = (
                TrainingLauncher.objects.select_for_update().filter(name=definition.name).first()
            )
        if launcher is None:
            try:
                with transaction.atomic():
                    launcher = TrainingLauncher.objects.create(**fields)
            except IntegrityError:
                raise ValidationFailed(
                    f"a launcher named {definition.name!r} was just created; load again",
                    field="name",
                ) from None
            log.info("training.launcher.created name=%s", launcher.name)
            return launcher, "created"
        if all(getattr(launcher, field) == value for field, value in fields.items()):
            return launcher, "unchanged"
        for field, value in fields.items():
            setattr(launcher, field, value)
        try:
            with transaction.atomic():
                launcher.save()
        except IntegrityError:
            raise ValidationFailed(
                f"another launcher is named {definition.name!r}", field="name"
            ) from None
    log.info("training.launcher.updated name=%s", launcher.name)
    return launcher, "updated"


def training_launchers_load(*, data: Any) -> list[tuple[TrainingLauncher, str]]:
    """Create or update the definitions of a loaded file, all or none.

    `data` is {"launchers": [definition, ...]} or the bare list; each definition an object
    with `name` and `argv` and optionally `description`, `environment`, `passthrough_env`,
    `enabled`. Errors name the field as `launchers[<i>].<field>`; nothing is written then.
    """
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"launchers"})
        if unknown:
            raise ValidationFailed("unknown key; the file holds `launchers`", field=unknown[0])
        data = data.get("launchers")
    if not isinstance(data, list) or not data:
        raise ValidationFailed("must be a non-empty list of launcher definitions",
                               field="launchers")  # fmt: skip
    definitions: list[LauncherDefinition] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        where = f"launchers[{i}]"
        if not isinstance(item, dict):
            raise ValidationFailed("must be an object with name and argv", field=where)
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise ValidationFailed(
                f"unknown key; a definition has {', '.join(FIELDS)}", field=f"{where}.{unknown[0]}"
            )
        for required in ("name", "argv"):
            if required not in item:
                raise ValidationFailed("is required", field=f"{where}.{required}")
        try:
            definition = training_launcher_clean(**item)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.detail, field=f"{where}.{exc.field}") from None
        if definition.name in seen:
            raise ValidationFailed(
                f"{definition.name!r} is defined twice in the file", field=f"{where}.name"
            )
        seen.add(definition.name)
        definitions.append(definition)
    with transaction.atomic():
        return [training_launcher_save(definition=d) for d in definitions]
