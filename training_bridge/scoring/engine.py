"""The scoring engine of one serving process: models loaded once, requests batched.

- Models are loaded on first use (the checkpoint fetched by `fetch`, then the trainer's
  `reward_model_load`) and kept, keyed by the registered model's id and checkpoint key; at
  most `max_models` stay in memory (least recently used first out), so after a promotion the
  new model is loaded by the first request that asks for it while the old one is still held
  for requests that pinned it. Two requests that need the same unloaded model load it once.
- Requests are batched: each request thread decodes and resizes its images (Pillow, in
  parallel), then hands them to the process's one batching thread, which takes the waiting
  requests for the same model, up to `max_batch` images together, and runs them through the
  network in one forward pass. Nothing waits for a batch to fill: under light load a request
  goes straight through, under load concurrent requests share forward passes, and torch runs
  in one thread of the process at a time.

The images a request thread prepares are the network's own input (its transform applied once),
so the scores equal `reward_model_load(folder).score(captions, images)` offline.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from training_bridge.trainer.checkpoint import RewardScorer, Score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """A registered reward model, as the engine needs it."""

    id: int
    name: str
    version: int
    artifact_key: str


class LoadedModel:
    def __init__(self, ref: ModelRef, scorer: RewardScorer, folder: Path, seconds: float):
        self.ref = ref
        self.scorer = scorer
        self.folder = folder
        self.load_seconds = seconds

    @property
    def backbone(self) -> str:
        return self.scorer.backbone

    @property
    def head(self) -> str:
        return self.scorer.head

    def prepare(self, image: Image.Image | bytes) -> Image.Image:
        """The image as the network sees it: decoded, converted and resized by its transform
        (applying the transform again later is the identity)."""
        return Image.fromarray(self.scorer.transform(image))


class _Job:
    __slots__ = ("model", "captions", "images", "done", "scores", "error")

    def __init__(self, model: LoadedModel, captions: list[str], images: list[Image.Image]):
        self.model = model
        self.captions = captions
        self.images = images
        self.done = threading.Event()
        self.scores: list[Score] | None = None
        self.error: BaseException | None = None


class Batcher:
    """One thread that runs the forward passes of every request of this process."""

    def __init__(self, *, max_batch: int) -> None:
        self.max_batch = max_batch
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.images = 0
        self.requests = 0

    def submit(self, model: LoadedModel, captions: list[str], images: list[Image.Image]):
        job = _Job(model, captions, images)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="reward-scoring-batcher", daemon=True
                )
                self._thread.start()
            self._jobs.append(job)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.scores

    def _take(self) -> list[_Job]:
        """The first waiting job and the next ones for the same model while they fit."""
        with self._cond:
            while not self._jobs:
                self._cond.wait()
            first = self._jobs.popleft()
            group, total = [first], len(first.images)
            while (
                self._jobs
                and self._jobs[0].model is first.model
                and total + len(self._jobs[0].images) <= self.max_batch
            ):
                job = self._jobs.popleft()
                group.append(job)
                total += len(job.images)
            return group

    def _loop(self) -> None:
        while True:
            group = self._take()
            try:
                self._run(group)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
                for job in group:
                    job.error = exc
            finally:
                for job in group:
                    job.done.set()

    def _run(self, group: list[_Job]) -> None:
        captions = [caption for job in group for caption in job.captions]
        images = [image for job in group for image in job.images]
        scorer = group[0].model.scorer
        scores = scorer.score(captions, images, batch_size=self.max_batch)
        start = 0
        for job in group:
            job.scores = scores[start : start + len(job.images)]
            start += len(job.images)
        self.passes += -(-len(images) // self.max_batch)
        self.images += len(images)
        self.requests += len(group)


class ScoringEngine:
    def __init__(
        self,
        *,
        fetch: Callable[[ModelRef], Path],
        device: str = "cpu",
        max_batch: int = 64,
        max_models: int = 2,
        num_threads: int | None = None,
    ) -> None:
        self.fetch = fetch
        self.device = device
        self.max_models = max(1, max_models)
        self.num_threads = num_threads
        self.batcher = Batcher(max_batch=max(1, max_batch))
        self._models: collections.OrderedDict[int, LoadedModel] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}
        self.loads = 0

    def loaded(self) -> list[ModelRef]:
        with self._lock:
            return [model.ref for model in self._models.values()]

    def model(self, ref: ModelRef) -> LoadedModel:
        """The model, loaded on first use (once, however many requests ask at the same time)."""
        found = self._cached(ref)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(ref.id, threading.Lock())
        with loading:
            found = self._cached(ref)
            if found is not None:
                return found
            model = self._load(ref)
            with self._lock:
                self._models[ref.id] = model
                self._models.move_to_end(ref.id)
                while len(self._models) > self.max_models:
                    _, evicted = self._models.popitem(last=False)
                    log.info("reward.model.evicted model=%s", evicted.ref.id)
            return model

    def _cached(self, ref: ModelRef) -> LoadedModel | None:
        with self._lock:
            model = self._models.get(ref.id)
            if model is None:
                return None
            if model.ref != ref:  # re-registered under another key: load it again
                del self._models[ref.id]
                return None
            self._models.move_to_end(ref.id)
            return model

    def _load(self, ref: ModelRef) -> LoadedModel:
        import torch

        from training_bridge.trainer.checkpoint import reward_model_load

        started = time.monotonic()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        folder = self.fetch(ref)
        scorer = reward_model_load(folder, device=device)
        seconds = time.monotonic() - started
        self.loads += 1
        log.info(
            "reward.model.loaded model=%s name=%s version=%s backbone=%s device=%s seconds=%.2f",
            ref.id, ref.name, ref.version, scorer.backbone, device, seconds,
        )  # fmt: skip
        return LoadedModel(ref, scorer, folder, seconds)

    def score(
        self, model: LoadedModel, captions: list[str], images: list[Image.Image | bytes]
    ) -> list[Score]:
        """Scores of (caption, image) pairs; images are prepared here, scored in a batch."""
        if len(captions) != len(images):
            raise ValueError("one caption per image is needed")
        prepared = [model.prepare(image) for image in images]
        return self.batcher.submit(model, captions, prepared)

    def stats(self) -> dict[str, Any]:
        return {
            "models": [ref.id for ref in self.loaded()],
            "loads": self.loads,
            "requests": self.batcher.requests,
            "images": self.batcher.images,
            "forward_passes": self.batcher.passes,
        }
