"""What a valid generator config is, and which of its settings make a candidate's key.

Checked without torch, so the web process can run it when a lead saves a config: the folder is
a diffusers folder on this machine, names, sizes and arguments are well formed. The settings
that decide the pixels (PARAM_FIELDS) are hashed into every candidate's generation key.
"""

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from config.celery import Queue
from config.errors import ValidationFailed
from generation_workers.backends.base import RESERVED_ARGS
from generation_workers.backends.fingerprint import (
    class_name_problem,
    model_folder_problem,
    model_folder_revision,
)
from generation_workers.models import GeneratorConfig

Backend = GeneratorConfig.Backend
EDITABLE_FIELDS = (
    "name",
    "backend",
    "model_path",
    "pipeline_class",
    "dtype",
    "device",
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "width",
    "height",
    "negative_prompt",
    "batch_size",
    "extra_args",
    "image_format",
    "queue",
)
# The settings that decide the pixels; batch size, device, queue and name do not.
PARAM_FIELDS = {
    Backend.DIFFUSERS: (
        "model_path",
        "model_revision",
        "pipeline_class",
        "dtype",
        "scheduler",
        "num_inference_steps",
        "guidance_scale",
        "width",
        "height",
        "negative_prompt",
        "extra_args",
        "image_format",
    ),
    Backend.PROCEDURAL: ("width", "height", "extra_args", "image_format"),
}
# A backend named in settings.GENERATION_EXTRA_BACKENDS (a benchmark's stand-in) has no model:
# its images depend on these, as the procedural renderer's do.
EXTRA_BACKEND_PARAM_FIELDS = PARAM_FIELDS[Backend.PROCEDURAL]
DTYPES = ("float32", "float16", "bfloat16")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")
QUEUE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
PROCEDURAL_EXTRA_ARGS = frozenset({"violate"})
SIZE_LIMITS = {Backend.DIFFUSERS: (64, 4096), Backend.PROCEDURAL: (32, 4096)}
MAX_BATCH = 64
MAX_STEPS = 1000
MAX_EXTRA_ARGS_BYTES = 4096
MAX_NEGATIVE_PROMPT = 2000


def param_fields(backend: str) -> tuple[str, ...]:
    """The settings that decide a backend's images (PARAM_FIELDS)."""
    return PARAM_FIELDS.get(backend, EXTRA_BACKEND_PARAM_FIELDS)


def params_of(*, backend: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"backend": backend, **{name: values[name] for name in param_fields(backend)}}


def generator_config_params(*, config: GeneratorConfig) -> dict[str, Any]:
    """The settings that decide a config's images (see PARAM_FIELDS)."""
    fields = param_fields(config.backend)
    return params_of(
        backend=config.backend, values={name: getattr(config, name) for name in fields}
    )


def generator_config_params_hash(*, config: GeneratorConfig) -> str:
    encoded = json.dumps(generator_config_params(config=config), sort_keys=True, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(f"{field} must be an integer from {low} to {high}", field=field)
    return value


def _extra_args_clean(value: Any, backend: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("extra_args must be a JSON object", field="extra_args")
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"extra_args is not JSON: {exc}", field="extra_args") from exc
    if len(encoded) > MAX_EXTRA_ARGS_BYTES:
        raise ValidationFailed(
            f"extra_args is over {MAX_EXTRA_ARGS_BYTES} bytes", field="extra_args"
        )
    if backend == Backend.PROCEDURAL:
        unknown = sorted(set(value) - PROCEDURAL_EXTRA_ARGS)
        if unknown:
            raise ValidationFailed(
                f"the procedural backend takes only 'violate' in extra_args, not {unknown}",
                field="extra_args",
            )
        violate = value.get("violate")
        if (
            violate is not None
            and violate != "random"
            and (isinstance(violate, bool) or not isinstance(violate, int) or violate < 0)
        ):
            raise ValidationFailed(
                'extra_args.violate must be a relation index (0, 1, ...) or "random"',
                field="extra_args.violate",
            )
    else:
        reserved = sorted(RESERVED_ARGS.intersection(value))
        if reserved:
            raise ValidationFailed(
                f"extra_args may not set {', '.join(reserved)} (the config or the worker sets "
                "them)",
                field="extra_args",
            )
    return dict(value)


def generator_config_clean(
    *, data: Mapping[str, Any], instance: GeneratorConfig | None = None
) -> dict[str, Any]:
    """Check a config's fields (instance: the current values under `data`); return them clean.

    Raises ValidationFailed naming the field. Also computes model_revision from the folder.
    """
    unknown = sorted(set(data) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationFailed(f"unknown field {unknown[0]!r}", field=unknown[0])
    current = {name: getattr(instance or GeneratorConfig(), name) for name in EDITABLE_FIELDS}
    values = {**current, **data}
    if instance is None and not data.get("backend"):
        raise ValidationFailed("backend is required (diffusers or procedural)", field="backend")
    if not isinstance(values["name"], str) or not NAME.match(values["name"]):
        raise ValidationFailed(
            "name must be 1-100 letters, digits, hyphens or underscores", field="name"
        )
    if values["backend"] not in Backend.values:
        raise ValidationFailed(
            f"backend must be one of {', '.join(Backend.values)}", field="backend"
        )
    backend = Backend(values["backend"])
    low, high = SIZE_LIMITS[backend]
    for field in ("width", "height"):
        values[field] = _integer(values[field], field, low, high)
        if backend == Backend.DIFFUSERS and values[field] % 8:
            raise ValidationFailed(f"{field} must be a multiple of 8", field=field)
    values["batch_size"] = _integer(values["batch_size"], "batch_size", 1, MAX_BATCH)
    values["num_inference_steps"] = _integer(
        values["num_inference_steps"], "num_inference_steps", 1, MAX_STEPS
    )
    guidance = values["guidance_scale"]
    if isinstance(guidance, bool) or not isinstance(guidance, int | float):
        raise ValidationFailed("guidance_scale must be a number", field="guidance_scale")
    if not math.isfinite(guidance) or not 0 <= guidance <= 100:
        raise ValidationFailed("guidance_scale must be from 0 to 100", field="guidance_scale")
    values["guidance_scale"] = float(guidance)
    if values["image_format"] not in ("png", "webp"):
        raise ValidationFailed("image_format must be png or webp", field="image_format")
    queue = values["queue"] or ""
    if queue and (not QUEUE.match(queue) or queue in (Queue.CPU, Queue.TRAINING)):
        raise ValidationFailed(
            "queue must be empty (the gpu queue) or a lowercase queue name other than cpu and "
            "training",
            field="queue",
        )
    values["queue"] = queue
    if (
        not isinstance(values["negative_prompt"], str)
        or len(values["negative_prompt"]) > MAX_NEGATIVE_PROMPT
    ):
        raise ValidationFailed(
            f"negative_prompt must be text of at most {MAX_NEGATIVE_PROMPT} characters",
            field="negative_prompt",
        )
    values["extra_args"] = _extra_args_clean(values["extra_args"] or {}, backend)
    if backend == Backend.PROCEDURAL:
        for field in ("model_path", "pipeline_class", "scheduler", "negative_prompt"):
            if values[field]:
                raise ValidationFailed(
                    f"{field} does not apply to the procedural backend", field=field
                )
        values["model_revision"] = ""
        return values
    problem = model_folder_problem(values["model_path"])
    if problem:
        raise ValidationFailed(problem, field="model_path")
    for field, suffix in (("pipeline_class", ""), ("scheduler", "Scheduler")):
        problem = class_name_problem(values[field], field=field, suffix=suffix)
        if problem:
            raise ValidationFailed(problem, field=field)
    if values["dtype"] not in DTYPES:
        raise ValidationFailed(f"dtype must be one of {', '.join(DTYPES)}", field="dtype")
    if not isinstance(values["device"], str) or not DEVICE.match(values["device"]):
        raise ValidationFailed("device must be auto, cpu, mps, cuda or cuda:N", field="device")
    values["model_revision"] = model_folder_revision(values["model_path"])
    return values
