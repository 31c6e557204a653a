"""The diffusers backend: a pipeline loaded once per worker process, one forward pass per batch.

Imports torch and diffusers, so only a worker ever imports this module (through
`base.backend_load`), after Celery has forked its pool process. The loaded pipeline is kept,
keyed by the config, the model folder's revision and the load options; a GPU holds one model at
a time, so loading another evicts it. A failed load is remembered for a minute so that the
config's other queued batches fail at once instead of loading again.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import diffusers
import torch
from diffusers import AutoPipelineForText2Image, DiffusionPipeline, SchedulerMixin

from .base import (
    RESERVED_ARGS,
    BackendConfig,
    ConfigUnusable,
    OutOfMemory,
    RenderedItem,
    RenderItem,
)
from .fingerprint import model_folder_problem, model_folder_revision

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CACHE_SIZE = 1  # pipelines kept per process: one model per GPU
FAILURE_MEMORY_SECONDS = 60.0
# What from_pretrained and a first call raise for a folder or class that does not fit.
LOAD_ERRORS = (OSError, ValueError, TypeError, AttributeError, KeyError, ImportError, RuntimeError)

CacheKey = tuple[int, str, str, str, str, str]


@dataclass
class LoadedPipeline:
    pipeline: Any
    device: str
    load_seconds: float


_pipelines: OrderedDict[CacheKey, LoadedPipeline] = OrderedDict()
_failures: dict[CacheKey, tuple[float, str]] = {}


def _cache_key(config: BackendConfig) -> CacheKey:
    return (
        config.config_id,
        config.model_revision,
        config.pipeline_class,
        config.dtype,
        config.device,
        config.scheduler,
    )


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigUnusable(f"device {name!r} asked for, but this worker has no CUDA device")
    return name


def _pipeline_class(name: str) -> type:
    if not name:
        return AutoPipelineForText2Image
    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type) or not (
        issubclass(cls, DiffusionPipeline) or cls is AutoPipelineForText2Image
    ):
        raise ConfigUnusable(f"pipeline_class {name!r} is not a diffusers pipeline class")
    return cls


def _scheduler_set(pipeline: Any, name: str) -> None:
    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type) or not issubclass(cls, SchedulerMixin):
        raise ConfigUnusable(f"scheduler {name!r} is not a diffusers scheduler class")
    pipeline.scheduler = cls.from_config(pipeline.scheduler.config)


def _evict_all() -> None:
    _pipelines.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def pipeline_load(config: BackendConfig, *, remember_failure: bool = True) -> LoadedPipeline:
    """The config's pipeline, from this process' cache or loaded from its folder."""
    key = _cache_key(config)
    loaded = _pipelines.get(key)
    if loaded is not None:
        _pipelines.move_to_end(key)
        return loaded
    failure = _failures.get(key)
    if remember_failure and failure and time.monotonic() - failure[0] < FAILURE_MEMORY_SECONDS:
        raise ConfigUnusable(failure[1])
    try:
        loaded = _pipeline_load_uncached(config)
    except ConfigUnusable as exc:
        _failures[key] = (time.monotonic(), str(exc))
        raise
    _failures.pop(key, None)
    while len(_pipelines) >= CACHE_SIZE:
        _evict_all()
    _pipelines[key] = loaded
    return loaded


def _pipeline_load_uncached(config: BackendConfig) -> LoadedPipeline:
    problem = model_folder_problem(config.model_path)
    if problem:
        raise ConfigUnusable(problem)
    revision = model_folder_revision(config.model_path)
    if config.model_revision and revision != config.model_revision:
        raise ConfigUnusable(
            f"the model folder {config.model_path} changed since the config was saved "
            f"(revision {config.model_revision[:12]}, now {revision[:12]}); save the config "
            "again, or make a new config if campaigns used this one"
        )
    if config.dtype not in DTYPES:
        raise ConfigUnusable(f"dtype {config.dtype!r} is not one of {', '.join(DTYPES)}")
    cls = _pipeline_class(config.pipeline_class)
    device = _device(config.device)
    if len(_pipelines) >= CACHE_SIZE:
        _evict_all()  # free the GPU before loading the next model
    started = time.perf_counter()
    try:
        pipeline = cls.from_pretrained(
            config.model_path, dtype=DTYPES[config.dtype], local_files_only=True
        )
        if config.scheduler:
            _scheduler_set(pipeline, config.scheduler)
        pipeline.to(device)
    except LOAD_ERRORS as exc:
        raise ConfigUnusable(
            f"could not load {config.model_path} as {cls.__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(pipeline):
        raise ConfigUnusable(f"{type(pipeline).__name__} cannot be called to make images")
    pipeline.set_progress_bar_config(disable=True)
    seconds = time.perf_counter() - started
    log.info(
        "generation.pipeline.loaded config=%s class=%s device=%s seconds=%.2f",
        config.config_id,
        type(pipeline).__name__,
        device,
        seconds,
    )
    return LoadedPipeline(pipeline=pipeline, device=device, load_seconds=seconds)


class DiffusionBackend:
    def __init__(self, config: BackendConfig, loaded: LoadedPipeline) -> None:
        self.config = config
        self.loaded = loaded
        reserved = RESERVED_ARGS.intersection(config.extra_args)
        if reserved:
            raise ConfigUnusable(f"extra_args may not set {', '.join(sorted(reserved))}")

    def describe(self) -> dict[str, Any]:
        pipeline = self.loaded.pipeline
        return {
            "backend": "diffusers",
            "model_path": self.config.model_path,
            "model_revision": self.config.model_revision,
            "pipeline_class": type(pipeline).__name__,
            "scheduler": type(pipeline.scheduler).__name__,
            "dtype": self.config.dtype,
            "device": self.loaded.device,
            "steps": self.config.num_inference_steps,
            "guidance_scale": self.config.guidance_scale,
            "width": self.config.width,
            "height": self.config.height,
            "negative_prompt": self.config.negative_prompt,
            "extra_args": dict(self.config.extra_args),
            "diffusers_version": diffusers.__version__,
            "torch_version": torch.__version__,
        }

    def render(self, items: Sequence[RenderItem]) -> list[RenderedItem]:
        """One forward pass for the batch, a fresh CPU generator seeded per image.

        CPU generators make the starting noise the same on every device, so a seed gives the
        same image on any worker (up to float differences between devices).
        """
        config = self.config
        arguments: dict[str, Any] = {
            "prompt": [item.text for item in items],
            "num_inference_steps": config.num_inference_steps,
            "guidance_scale": config.guidance_scale,
            "width": config.width,
            "height": config.height,
            "generator": [torch.Generator(device="cpu").manual_seed(item.seed) for item in items],
            "output_type": "pil",
            **config.extra_args,
        }
        if config.negative_prompt:
            arguments["negative_prompt"] = [config.negative_prompt] * len(items)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.loaded.pipeline(**arguments)
        except torch.cuda.OutOfMemoryError as exc:
            raise OutOfMemory(str(exc).splitlines()[0] if str(exc) else "CUDA OOM") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigUnusable(
                f"{type(self.loaded.pipeline).__name__} refused the call: {exc}"
            ) from exc
        batch_ms = (time.perf_counter() - started) * 1000
        images = list(output.images)
        if len(images) != len(items):
            raise ConfigUnusable(f"the pipeline returned {len(images)} images for {len(items)}")
        return [
            RenderedItem(
                candidate_id=item.candidate_id,
                image=image,
                metadata={
                    "seed": item.seed,
                    "batch_size": len(items),
                    "batch_ms": round(batch_ms, 2),
                    "duration_ms": round(batch_ms / len(items), 2),
                },
            )
            for item, image in zip(items, images, strict=True)
        ]

    def release_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def backend_for(config: BackendConfig) -> DiffusionBackend:
    return DiffusionBackend(config, pipeline_load(config))


def config_check(config: BackendConfig) -> str:
    """Load the config's pipeline (afresh) and make one one-step image; say what was found."""
    _failures.pop(_cache_key(config), None)
    loaded = pipeline_load(config, remember_failure=False)
    backend = DiffusionBackend(config, loaded)
    probe = dataclasses.replace(config, num_inference_steps=1)
    started = time.perf_counter()
    DiffusionBackend(probe, loaded).render(
        [
            RenderItem(
                candidate_id=0, text="a photo of a cat to the left of a dog", structure={}, seed=0
            )
        ]
    )
    seconds = time.perf_counter() - started
    described = backend.describe()
    return (
        f"loaded {described['pipeline_class']} ({described['scheduler']}) on "
        f"{described['device']} in {loaded.load_seconds:.1f} s; a one-step "
        f"{config.width}x{config.height} test image took {seconds:.1f} s"
    )
