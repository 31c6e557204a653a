"""What a backend is given and returns, its errors, and batch splitting on out-of-memory.

Plain dataclasses and no Django or torch, so the worker-side services, the backends and the
tests share them without importing a model library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from PIL import Image


# Arguments a backend sets itself from the config; a config's extra_args may not override them.
RESERVED_ARGS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "num_inference_steps",
        "guidance_scale",
        "width",
        "height",
        "generator",
        "output_type",
        "num_images_per_prompt",
        "return_dict",
        "latents",
        "prompt_embeds",
    }
)


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """The parts of a GeneratorConfig a backend needs (built by services.configs)."""

    config_id: int
    backend: str
    model_path: str = ""
    model_revision: str = ""
    pipeline_class: str = ""
    dtype: str = "float32"
    device: str = "auto"
    scheduler: str = ""
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    width: int = 512
    height: int = 512
    negative_prompt: str = ""
    extra_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RenderItem:
    """One image to make: a candidate's prompt (text and structure) and its seed."""

    candidate_id: int
    text: str
    structure: Mapping[str, Any]
    seed: int


@dataclass(slots=True)
class RenderedItem:
    """An image, or the readable reason there is none; metadata is stored with the candidate."""

    candidate_id: int
    image: Image.Image | None
    error: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


# What a backend bug or an unexpected model error raises: the batch's items fail with the message
# (the campaign goes on) instead of the task failing and its leases running out.
BACKEND_ERRORS = (
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
)


class ConfigUnusable(Exception):
    """The config's model cannot be loaded or used: every item of the batch fails with this."""


class OutOfMemory(Exception):
    """The device ran out of memory on a batch (a smaller batch may fit)."""


class Backend(Protocol):
    def describe(self) -> dict[str, Any]:
        """Metadata shared by every image of this backend (model, revision, scheduler...)."""
        ...

    def render(self, items: Sequence[RenderItem]) -> list[RenderedItem]:
        """One image (or one error) per item, in order; raises OutOfMemory for the batch."""
        ...


_MODULES = {
    "diffusers": "generation_workers.backends.diffusion",
    "procedural": "generation_workers.backends.scenes",
}


def _module(backend: str, extra_modules: Mapping[str, str] | None) -> Any:
    module_name = _MODULES.get(backend) or (extra_modules or {}).get(backend)
    if module_name is None:
        raise ConfigUnusable(f"unknown backend {backend!r}")
    return importlib.import_module(module_name)


def backend_load(
    config: BackendConfig, *, extra_modules: Mapping[str, str] | None = None
) -> Backend:
    """The backend for a config, imported on first use (torch only ever loads in workers).
    `extra_modules` (settings.GENERATION_EXTRA_BACKENDS) names backends beside the built-in
    ones, e.g. a benchmark's stand-in for a GPU."""
    return _module(config.backend, extra_modules).backend_for(config)


def backend_check(config: BackendConfig, *, extra_modules: Mapping[str, str] | None = None) -> str:
    """Load the config's backend afresh and make one test image; a sentence on what was found.

    Raises ConfigUnusable with the reason when it cannot be used.
    """
    return _module(config.backend, extra_modules).config_check(config)


def render_splitting_on_oom(
    items: Sequence[RenderItem],
    render: Callable[[Sequence[RenderItem]], list[RenderedItem]],
    *,
    after_oom: Callable[[], None] = lambda: None,
) -> list[RenderedItem]:
    """Render the batch; when it does not fit in memory, render each half, down to one image.

    An image that does not fit on its own fails with a readable message; the others go on.
    """
    try:
        return render(items)
    except OutOfMemory as exc:
        after_oom()
        if len(items) == 1:
            return [
                RenderedItem(
                    candidate_id=items[0].candidate_id,
                    image=None,
                    error=f"out of memory even for a single image ({exc}); lower the image "
                    "size or the steps, or use a larger GPU",
                )
            ]
        middle = len(items) // 2
        return render_splitting_on_oom(
            items[:middle], render, after_oom=after_oom
        ) + render_splitting_on_oom(items[middle:], render, after_oom=after_oom)
