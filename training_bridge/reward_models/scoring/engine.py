"""The scoring engine of one serving process: models loaded once, requests batched.

- Models are loaded on first use (the checkpoint fetched by `fetch`, then the trainer's
  `reward_model_load`) and kept, keyed by the registered model's id and checkpoint key; at
  most `max_models` stay in memory (least recently used first out), so after a promotion the
  new model is loaded by the first request that asks for it while the old one is still held
  for requests that pinned it. Two requests that need the same unloaded model load it once.
- Requests are batched by one thread per process (`Batcher`): it takes the first waiting
  request and the next ones for the same model, up to `max_batch` images; a pass with room
  waits at most `max_wait` seconds for more. Then it decodes and resizes each request's images
  with the network's own transform (once, into the uint8 arrays the network reads) and runs
  them through the network in one forward pass. Requests that arrive while a pass runs share
  the next one.
- Where the images are prepared: on a CPU device in the batching thread, which then does what
  a trainer calling the model in its own process does, in one thread, while the request
  threads only read and check their requests (preparing them in the request threads made
  their Pillow calls and the batching thread's torch operations hand the GIL back and forth:
  bench/scoring/RESULTS.md); more cores are used by more worker processes. On a GPU the
  request threads prepare (their decoding runs while the device computes).

The scores equal `reward_model_load(folder).score(captions, images)` offline: the arrays are
the trainer's transform's output, and the forward pass is the trainer's `RewardScorer.score`
(on arrays it passes through). An uploaded image whose pixels cannot be decoded fails its own
request with `ImageUndecodable` (its position in the request), never the requests batched
with it; a request scored `per_item` gets that error in the undecodable image's place instead
and scores for the others.

Admission: with `max_pending` images already handed over and not yet answered, a request that
would go past it is refused with `EngineBusy` (the API's retryable 503); a request alone in an
idle engine is always taken, however large, so the refusal is never permanent.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from config.errors import DomainError
from training_bridge.reward_models.scoring.payloads import ImageUndecodable

if TYPE_CHECKING:
    from training_bridge.training.trainer.checkpoint import RewardScorer, Score

# What decoding an opened upload may raise (a truncated or corrupt stream, a bad header field)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

log = logging.getLogger(__name__)


class EngineBusy(DomainError):
    """More images are waiting in this process than it takes at once: retry shortly."""

    status_code = 503
    code = "busy"
    retry_after_seconds = 1


@dataclass(frozen=True)
class ModelRef:
    """A registered reward model, as the engine needs it."""

    id: int
    name: str
    version: int
    artifact_key: str


class _Prepared:
    """The network's transform, except that arrays it already made pass through unchanged."""

    def __init__(self, transform: Callable[[Any], np.ndarray]) -> None:
        self.transform = transform

    def __call__(self, image: Any) -> np.ndarray:
        return image if isinstance(image, np.ndarray) else self.transform(image)


class LoadedModel:
    def __init__(self, ref: ModelRef, scorer: RewardScorer, folder: Path, seconds: float):
        self.ref = ref
        self.scorer = scorer
        self.folder = folder
        self.load_seconds = seconds
        # the trainer's scorer, sharing its network, fed the prepared arrays
        self._on_arrays = copy.copy(scorer)
        self._on_arrays.transform = _Prepared(scorer.transform)

    @property
    def backbone(self) -> str:
        return self.scorer.backbone

    @property
    def head(self) -> str:
        return self.scorer.head

    @property
    def on_cpu(self) -> bool:
        return self.scorer.device.type == "cpu"

    def prepare_all(self, images: Sequence[Image.Image | bytes]) -> list[np.ndarray]:
        """The images as the network reads them: decoded, converted and resized by its own
        transform into uint8 (H, W, 3) arrays. An upload (a Pillow image opened but not yet
        decoded) whose pixels cannot be decoded raises `ImageUndecodable` with its position;
        stored bytes raise what the decoder raised, as `reward_model_load(...).score` does."""
        return [self._prepare_one(position, image) for position, image in enumerate(images)]

    def prepare_each(
        self, images: Sequence[Image.Image | bytes]
    ) -> tuple[list[np.ndarray], dict[int, ImageUndecodable]]:
        """`prepare_all`, except that an undecodable upload is set aside (by position) and the
        others are prepared."""
        arrays, failed = [], {}
        for position, image in enumerate(images):
            try:
                arrays.append(self._prepare_one(position, image))
            except ImageUndecodable as exc:
                failed[position] = exc
        return arrays, failed

    def _prepare_one(self, position: int, image: Image.Image | bytes) -> np.ndarray:
        try:
            return self.scorer.transform(image)
        except DECODE_ERRORS as exc:
            if isinstance(image, Image.Image):
                raise ImageUndecodable(
                    f"the image cannot be decoded: {exc}", position=position
                ) from None
            raise

    def forward(self, captions: list[str], arrays: list[np.ndarray], *, batch_size: int):
        """The trainer's `RewardScorer.score` on prepared arrays."""
        return self._on_arrays.score(captions, arrays, batch_size=batch_size)


class _Job:
    __slots__ = ("model", "captions", "images", "arrays", "per_item", "failed", "done", "scores",
                 "error")  # fmt: skip

    def __init__(
        self,
        model: LoadedModel,
        captions: list[str],
        images: Sequence[Image.Image | bytes],
        arrays: list[np.ndarray] | None = None,
        *,
        per_item: bool = False,
        failed: dict[int, ImageUndecodable] | None = None,
    ) -> None:
        self.model = model
        self.captions = captions
        self.images = images
        self.arrays = arrays  # None: the batching thread prepares the images
        self.per_item = per_item
        self.failed = failed or {}  # per_item: undecodable images by position
        self.done = threading.Event()
        self.scores: list[Any] | None = None
        self.error: BaseException | None = None

    def prepare(self) -> None:
        if self.per_item:
            self.arrays, self.failed = self.model.prepare_each(self.images)
        else:
            self.arrays = self.model.prepare_all(self.images)

    def captions_scored(self) -> list[str]:
        if not self.failed:
            return self.captions
        return [c for i, c in enumerate(self.captions) if i not in self.failed]

    def answer(self, scores: list[Score]) -> None:
        """The scores in request order, each failed image's error in its place."""
        if not self.failed:
            self.scores = scores
            return
        given = iter(scores)
        self.scores = [
            self.failed[i] if i in self.failed else next(given) for i in range(len(self.images))
        ]


class Batcher:
    """One thread that runs the forward passes of every request of this process (and, for the
    jobs handed over without arrays, prepares their images first): at most `max_batch` images
    a pass, of one model; a pass with room waits at most `max_wait` seconds for more."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait: float = 0.0,
        num_threads: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.num_threads = num_threads
        self.max_pending = max_pending
        self._waiting: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pending = 0  # images handed over and not yet answered
        self.passes = 0
        self.images = 0
        self.requests = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        """Images handed over (waiting or in a pass) and not yet answered."""
        with self._cond:
            return self._pending

    @property
    def waiting(self) -> int:
        """Requests handed over and not yet taken into a pass."""
        with self._cond:
            return len(self._waiting)

    def submit(
        self,
        model: LoadedModel,
        captions: list[str],
        images: Sequence[Image.Image | bytes],
        arrays: list[np.ndarray] | None = None,
        *,
        per_item: bool = False,
        failed: dict[int, ImageUndecodable] | None = None,
        max_pending: int | None = None,
    ) -> list[Any]:
        """Scores of the images (prepared here if `arrays` is None), from the batching thread;
        `per_item`: an undecodable image's `ImageUndecodable` in its place (`failed`: those
        already found by a caller that prepared the arrays). `EngineBusy` if the images would
        take the engine past `max_pending` (default: the batcher's) while it has work."""
        job = _Job(model, captions, images, arrays, per_item=per_item, failed=failed)
        count = len(images)
        limit = self.max_pending if max_pending is None else max_pending
        with self._cond:
            if limit and self._pending and self._pending + count > limit:
                self.refused += 1
                raise EngineBusy(
                    f"{self._pending} images are being scored in this process; at most "
                    f"{limit} are taken at once: retry shortly",
                    field="images",
                )
            self._pending += count
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="reward-scoring-batcher", daemon=True
                )
                self._thread.start()
            self._waiting.append(job)
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.scores

    def _take(self) -> list[_Job]:
        """The first waiting job and the next ones for the same model while they fit, waiting
        up to `max_wait` for more while the pass has room."""
        with self._cond:
            while not self._waiting:
                self._cond.wait()
            first = self._waiting.popleft()
            group, total = [first], len(first.images)
            deadline = time.monotonic() + self.max_wait
            while True:
                while (
                    self._waiting
                    and self._waiting[0].model is first.model
                    and total + len(self._waiting[0].images) <= self.max_batch
                ):
                    job = self._waiting.popleft()
                    group.append(job)
                    total += len(job.images)
                if self._waiting or total >= self.max_batch:
                    break  # full, or the next job is for another model or does not fit
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return group

    def _loop(self) -> None:
        if self.num_threads:
            import torch

            # torch's OpenMP thread count is kept per thread (one that existed before
            # set_num_threads keeps its own): set it in the thread that runs the forward passes
            torch.set_num_threads(self.num_threads)
        while True:
            group = self._take()
            try:
                self._run(group)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
                for job in group:
                    if job.error is None:  # one that failed on its own images keeps its error
                        job.error = exc
            finally:
                with self._cond:
                    self._pending -= sum(len(job.images) for job in group)
                for job in group:
                    job.done.set()

    def _run(self, group: list[_Job]) -> None:
        ready = []
        for job in group:  # a request whose images cannot be prepared fails alone
            if job.arrays is None:
                try:
                    job.prepare()
                except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                    job.error = exc
                    continue
            ready.append(job)
        if not ready:
            return
        captions = [caption for job in ready for caption in job.captions_scored()]
        arrays = [array for job in ready for array in job.arrays]
        scores = (
            ready[0].model.forward(captions, arrays, batch_size=self.max_batch) if arrays else []
        )
        start = 0
        for job in ready:
            job.answer(scores[start : start + len(job.arrays)])
            start += len(job.arrays)
        self.passes += -(-len(arrays) // self.max_batch)
        self.images += len(arrays)
        self.requests += len(ready)


class ScoringEngine:
    def __init__(
        self,
        *,
        fetch: Callable[[ModelRef], Path],
        device: str = "cpu",
        max_batch: int = 64,
        max_models: int = 2,
        num_threads: int | None = None,
        prepare_in_requests: bool | None = None,
        max_wait: float = 0.0,
        max_pending: int | None = None,
    ) -> None:
        """`prepare_in_requests`: None decides by the model's device (CPU: the batching thread
        prepares; a GPU: the request threads)."""
        self.fetch = fetch
        self.device = device
        self.prepare_in_requests = prepare_in_requests
        self.max_models = max(1, max_models)
        self.num_threads = num_threads
        self.batcher = Batcher(
            max_batch=max(1, max_batch),
            max_wait=max(0.0, max_wait),
            num_threads=num_threads,
            max_pending=max_pending,
        )
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

        from training_bridge.training.trainer.checkpoint import reward_model_load

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
        self,
        model: LoadedModel,
        captions: list[str],
        images: Sequence[Image.Image | bytes],
        *,
        per_item: bool = False,
        max_pending: int | None = None,
    ) -> list[Any]:
        """Scores of (caption, image) pairs, scored in a batch; the images are uploads opened
        by `payloads.image_open` (decoded here: `ImageUndecodable` if they cannot be), Pillow
        images or encoded bytes. `per_item`: an undecodable upload's `ImageUndecodable` takes
        its place in the list and the others are scored."""
        if len(captions) != len(images):
            raise ValueError("one caption per image is needed")
        prepare_here = self.prepare_in_requests
        if prepare_here is None:
            prepare_here = not model.on_cpu
        arrays, failed = None, None
        if prepare_here:
            if per_item:
                arrays, failed = model.prepare_each(images)
            else:
                arrays = model.prepare_all(images)
        return self.batcher.submit(
            model, captions, images, arrays, per_item=per_item, failed=failed,
            max_pending=max_pending,
        )  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return {
            "models": [ref.id for ref in self.loaded()],
            "loads": self.loads,
            "requests": self.batcher.requests,
            "images": self.batcher.images,
            "forward_passes": self.batcher.passes,
            "pending": self.batcher.pending,
            "refused": self.batcher.refused,
        }
