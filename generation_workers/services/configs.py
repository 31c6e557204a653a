"""Writes of generator configs: create and update (validated by config_rules), the check.

Once a config has candidates its generation settings are fixed (they are in every candidate's
key): make a new config instead. Saving checks what can be checked without torch; the "check"
loads the model once in a worker (on the config's queue) and records what happened.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.celery import Queue
from config.errors import Conflict, NotFound, ValidationFailed
from generation_workers.backends.base import (
    BACKEND_ERRORS,
    BackendConfig,
    ConfigUnusable,
    backend_check,
)
from generation_workers.backends.fingerprint import model_folder_problem, model_folder_revision
from generation_workers.models import Candidate, GeneratorConfig
from generation_workers.services.config_rules import (
    Backend,
    generator_config_clean,
    generator_config_params,
    params_of,
)

log = logging.getLogger(__name__)


def generator_config_backend_spec(*, config: GeneratorConfig) -> BackendConfig:
    """What the backend needs of the config, as a plain dataclass (no Django in backends)."""
    return BackendConfig(
        config_id=config.pk,
        backend=config.backend,
        model_path=config.model_path,
        model_revision=config.model_revision,
        pipeline_class=config.pipeline_class,
        dtype=config.dtype,
        device=config.device,
        scheduler=config.scheduler,
        num_inference_steps=config.num_inference_steps,
        guidance_scale=config.guidance_scale,
        width=config.width,
        height=config.height,
        negative_prompt=config.negative_prompt,
        extra_args=dict(config.extra_args or {}),
    )


def generator_config_is_used(*, config_id: int) -> bool:
    return Candidate.objects.filter(config_id=config_id).exists()


def _params_changed(config: GeneratorConfig, values: Mapping[str, Any]) -> list[str]:
    before = generator_config_params(config=config)
    after = params_of(backend=values["backend"], values=values)
    return [
        name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)
    ]


def generator_config_create(**fields: Any) -> GeneratorConfig:
    """A new config from its fields (keyword-only, see EDITABLE_FIELDS); validated first."""
    values = generator_config_clean(data=fields)
    if GeneratorConfig.objects.filter(name=values["name"]).exists():
        raise ValidationFailed(f"a config named {values['name']!r} exists", field="name")
    try:
        with transaction.atomic():
            config = GeneratorConfig.objects.create(**values)
    except IntegrityError as exc:
        raise ValidationFailed(f"a config named {values['name']!r} exists", field="name") from exc
    log.info("generation.config.created config=%s backend=%s", config.pk, config.backend)
    return config


def generator_config_update(*, config_id: int, **fields: Any) -> GeneratorConfig:
    """Change a config; its generation settings only while no candidate was made with it."""
    with transaction.atomic():
        config = GeneratorConfig.objects.select_for_update().filter(pk=config_id).first()
        if config is None:
            raise NotFound(f"no generator config {config_id}", field="config")
        values = generator_config_clean(data=fields, instance=config)
        changed = _params_changed(config, values)
        if changed and generator_config_is_used(config_id=config.pk):
            raise Conflict(
                f"config {config.name!r} has made candidates, so its generation settings "
                f"({', '.join(changed)}) are fixed; create a new config instead",
                field=changed[0] if changed[0] in fields else None,
            )
        if values["name"] != config.name and (
            GeneratorConfig.objects.filter(name=values["name"]).exclude(pk=config.pk).exists()
        ):
            raise ValidationFailed(f"a config named {values['name']!r} exists", field="name")
        for name, value in values.items():
            setattr(config, name, value)
        if changed:
            config.check_status = GeneratorConfig.CheckStatus.UNCHECKED
            config.check_message = ""
            config.checked_at = None
        config.save()
    return config


def generator_config_procedural_ensure(
    *,
    name: str = "procedural",
    width: int = 512,
    height: int = 512,
    image_format: str = "png",
    batch_size: int = 16,
    violate: int | str | None = None,
) -> GeneratorConfig:
    """The named procedural config, created on first use (the demo and gold campaigns use it)."""
    existing = GeneratorConfig.objects.filter(name=name).first()
    if existing is not None:
        if existing.backend != Backend.PROCEDURAL:
            raise ValidationFailed(f"config {name!r} is not a procedural config", field="name")
        return existing
    return generator_config_create(
        name=name,
        backend=Backend.PROCEDURAL,
        width=width,
        height=height,
        image_format=image_format,
        batch_size=batch_size,
        extra_args={} if violate is None else {"violate": violate},
    )


def generator_config_check_request(*, config_id: int) -> GeneratorConfig:
    """Ask a worker (on the config's queue) to load the config once and report."""
    from generation_workers import tasks  # tasks import these services

    with transaction.atomic():
        updated = GeneratorConfig.objects.filter(pk=config_id).update(
            check_status=GeneratorConfig.CheckStatus.CHECKING, check_message=""
        )
        if not updated:
            raise NotFound(f"no generator config {config_id}", field="config")
        config = GeneratorConfig.objects.get(pk=config_id)
        queue = config.queue or Queue.GPU
        tasks.config_check.apply_async_on_commit(args=[config_id], queue=queue)
    return config


def _check_record(config_id: int, ok: bool, message: str) -> None:
    status = GeneratorConfig.CheckStatus.OK if ok else GeneratorConfig.CheckStatus.FAILED
    GeneratorConfig.objects.filter(pk=config_id).update(
        check_status=status, check_message=message[:4000], checked_at=timezone.now()
    )
    log.info("generation.config.checked config=%s ok=%s message=%s", config_id, ok, message)


def generator_config_check_run(*, config_id: int) -> bool:
    """In a worker: load the config's model once (and keep it), make a test image, record it."""
    config = GeneratorConfig.objects.filter(pk=config_id).first()
    if config is None:
        return False
    if config.backend == Backend.DIFFUSERS:
        problem = model_folder_problem(config.model_path)
        if problem:
            _check_record(config_id, False, problem)
            return False
        revision = model_folder_revision(config.model_path)
        if revision != config.model_revision:
            if generator_config_is_used(config_id=config_id):
                _check_record(
                    config_id,
                    False,
                    f"the model folder changed since campaigns used this config (revision "
                    f"{config.model_revision[:12]}, now {revision[:12]}); create a new config",
                )
                return False
            GeneratorConfig.objects.filter(pk=config_id).update(model_revision=revision)
            config.model_revision = revision
    try:
        message = backend_check(
            generator_config_backend_spec(config=config),
            extra_modules=settings.GENERATION_EXTRA_BACKENDS,
        )
    except ConfigUnusable as exc:
        _check_record(config_id, False, str(exc))
        return False
    except BACKEND_ERRORS as exc:
        _check_record(config_id, False, f"the test image failed: {type(exc).__name__}: {exc}")
        return False
    _check_record(config_id, True, message)
    return True
