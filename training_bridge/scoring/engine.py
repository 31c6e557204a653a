"""The scoring engine of one serving process: models loaded once, requests batched.

- Models are loaded on first use (the checkpoint fetched by `fetch`, then the trainer's
  `reward_model_load`) and kept, keyed by the registered model's id and checkpoint key; at
  most `max_models` stay in memory (least recently used first out), so after a promotion the
  new model is loaded by the first request that asks for it while the old one is still held
  for requests that pinned it. Two requests that need the same unloaded model load it once.
- Requests are batched: each request hands its images (uploads opened and checked by
  `payloads.image_open`, or stored bytes) to the process's one batching thread, which takes
  the waiting requests for the same model, up to `max_batch` images together, decodes and
  resizes each request's images with the network's own transform (once, into the uint8 arrays
  the network reads) and runs them through the network in one forward pass. Nothing waits for
  a batch to fill: under light load a request goes straight through, under load concurrent
  requests share forward passes (the larger `max_batch`, the more of them: each pass has a
  fixed cost, a large share of a small model's).
- Requests on their way are waited for, briefly (at most `gather_seconds`, and only while
  the pass has room): a request that has read its body announces itself
  (`Batcher.arriving`) while it checks and opens its images, and a pass waits for the
  announced ones; it also waits for as many requests as the last pass had. Clients that send
  together (several trainer processes, each sending again once a pass has answered them all)
  then keep sharing passes instead of splitting into a pass for the first and one for the
  rest; a lone client is never delayed (its last pass had one request, nothing else is
  announced). When fewer come than last time, one pass waits the whole `gather_seconds`.
- A pass grows into a larger size class only while that class is not known to cost more per
  image for its model (`PassCosts`, measured on the passes run): sharing passes is what makes
  a small transformer cheap, and what makes a convolutional network on a CPU dear.
- Where the images are prepared: on a CPU device in the batching thread, which then does what
  a trainer calling the model in its own process does, in one thread, while the request
  threads only read and check their requests. Preparing them in the request threads instead
  makes their Pillow calls and the batching thread's torch operations hand the GIL from thread
  to thread all the time (more context switches per request, and 10-30% more CPU per image than
  the same work in one thread: bench/scoring/RESULTS.md); more cores are used by more worker
  processes. On a GPU the request threads prepare (their decoding runs while the device
  computes).

The scores equal `reward_model_load(folder).score(captions, images)` offline: the arrays are
the trainer's transform's output, and the forward pass is the trainer's `RewardScorer.score`
(on arrays it passes through). An uploaded image whose pixels cannot be decoded fails its own
request with `ImageUndecodable` (its position in the request), never the requests batched
with it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from training_bridge.scoring.payloads import ImageUndecodable

if TYPE_CHECKING:
    from training_bridge.trainer.checkpoint import RewardScorer, Score

# What decoding an opened upload may raise (a truncated or corrupt stream, a bad header field)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

log = logging.getLogger(__name__)


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
        prepare = self.scorer.transform
        out = []
        for position, image in enumerate(images):
            try:
                out.append(prepare(image))
            except DECODE_ERRORS as exc:
                if isinstance(image, Image.Image):
                    raise ImageUndecodable(
                        f"the image cannot be decoded: {exc}", position=position
                    ) from None
                raise
        return out

    def forward(self, captions: list[str], arrays: list[np.ndarray], *, batch_size: int):
        """The trainer's `RewardScorer.score` on prepared arrays."""
        return self._on_arrays.score(captions, arrays, batch_size=batch_size)


class _Job:
    __slots__ = ("model", "captions", "images", "arrays", "done", "scores", "error")

    def __init__(
        self,
        model: LoadedModel,
        captions: list[str],
        images: Sequence[Image.Image | bytes],
        arrays: list[np.ndarray] | None = None,
    ) -> None:
        self.model = model
        self.captions = captions
        self.images = images
        self.arrays = arrays  # None: the batching thread prepares the images
        self.done = threading.Event()
        self.scores: list[Score] | None = None
        self.error: BaseException | None = None


def _size_class(images: int) -> int:
    """A pass's size class: its image count rounded up to a power of two."""
    return 1 << max(0, images - 1).bit_length()


class PassCosts:
    """One model's forward passes: seconds per image by size class, as moving averages.

    Whether a larger pass costs less per image is a property of the model and the machine: the
    tiny CLIP's pass is mostly fixed cost (0.069 ms per image at 32 images, 0.030 at 256 on
    this CPU), the built-in convolutional network's activations outgrow the caches (0.21 ms at
    64, 0.33 at 256): bench/scoring/passes.py. So a pass grows into a larger size class only
    while that class is not known to cost more per image (5% leeway); an unmeasured class is
    tried, and every `EXPLORE_EVERY`-th pass tries again, so the averages follow the machine.
    """

    EXPLORE_EVERY = 50
    WEIGHT = 0.2  # of the newest pass in the moving average
    LEEWAY = 1.05

    def __init__(self) -> None:
        self.per_image: dict[int, float] = {}
        self.passes = 0

    def record(self, images: int, seconds: float) -> None:
        if images < 1:
            return
        size, value = _size_class(images), seconds / images
        old = self.per_image.get(size)
        self.per_image[size] = value if old is None else old + self.WEIGHT * (value - old)
        self.passes += 1

    def worth_growing(self, images: int, more: int) -> bool:
        """Whether a pass of `images` should take `more` images along."""
        here, there = _size_class(images), _size_class(images + more)
        if there == here or self.passes % self.EXPLORE_EVERY == 0:
            return True
        now, then = self.per_image.get(here), self.per_image.get(there)
        return now is None or then is None or then <= now * self.LEEWAY


class Batcher:
    """One thread that runs the forward passes of every request of this process (and, for the
    jobs handed over without arrays, prepares their images first)."""

    def __init__(
        self, *, max_batch: int, num_threads: int | None = None, gather_seconds: float = 0.0
    ) -> None:
        self.max_batch = max_batch
        self.num_threads = num_threads
        self.gather_seconds = gather_seconds
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._coming = 0  # announced requests that have not handed over their images yet
        self._last_requests = 1  # requests in the last pass
        self._costs: dict[int, PassCosts] = {}  # by id() of the model
        self._announced = threading.local()
        self.passes = 0
        self.images = 0
        self.requests = 0

    @contextlib.contextmanager
    def arriving(self) -> Iterator[Callable[[], None]]:
        """For a request thread: the block in which it reads and checks a request that will be
        scored. Call the function it yields once the body is read; from then on until the
        request hands over its images (or leaves the block), a pass being gathered waits for
        it."""

        def announce() -> None:
            if not getattr(self._announced, "on", False):
                self._announced.on = True
                with self._cond:
                    self._coming += 1

        try:
            yield announce
        finally:
            if getattr(self._announced, "on", False):  # left before handing over
                self._announced.on = False
                with self._cond:
                    self._coming -= 1
                    self._cond.notify_all()

    def submit(
        self,
        model: LoadedModel,
        captions: list[str],
        images: Sequence[Image.Image | bytes],
        arrays: list[np.ndarray] | None = None,
    ) -> list[Score]:
        """Scores of the images (prepared here if `arrays` is None), from the batching thread."""
        job = _Job(model, captions, images, arrays)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="reward-scoring-batcher", daemon=True
                )
                self._thread.start()
        self._hand_over(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.scores

    def _costs_of(self, model: object) -> PassCosts:
        costs = self._costs.get(id(model))
        if costs is None:
            costs = self._costs[id(model)] = PassCosts()
        return costs

    def _hand_over(self, job: _Job) -> None:
        with self._cond:
            self._jobs.append(job)
            if getattr(self._announced, "on", False):  # no longer on its way: here
                self._announced.on = False
                self._coming -= 1
            self._cond.notify_all()

    def _take(self) -> list[_Job]:
        """The first waiting job and the next ones for the same model while they fit (and the
        larger pass is not known to cost more per image), then those handed over while
        announced requests remain or the pass has fewer requests than the last one (for at
        most `gather_seconds`)."""
        with self._cond:
            while not self._jobs:
                self._cond.wait()
            first = self._jobs.popleft()
            group, total = [first], len(first.images)
            costs = self._costs_of(first.model)
            deadline = None
            while True:
                while (
                    self._jobs
                    and self._jobs[0].model is first.model
                    and total + len(self._jobs[0].images) <= self.max_batch
                    and costs.worth_growing(total, len(self._jobs[0].images))
                ):
                    job = self._jobs.popleft()
                    group.append(job)
                    total += len(job.images)
                if self._jobs or total >= self.max_batch:
                    break  # the next job cannot join this pass
                if not self._coming and len(group) >= self._last_requests:
                    break  # nothing announced, and as many requests as the last pass had
                if not costs.worth_growing(total, len(first.images)):
                    break  # a larger pass of this model costs more per image
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.gather_seconds
                if now >= deadline:
                    break
                self._cond.wait(deadline - now)
            self._last_requests = len(group)
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
                for job in group:
                    job.done.set()

    def _run(self, group: list[_Job]) -> None:
        ready = []
        for job in group:  # a request whose images cannot be prepared fails alone
            if job.arrays is None:
                try:
                    job.arrays = job.model.prepare_all(job.images)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                    job.error = exc
                    continue
            ready.append(job)
        if not ready:
            return
        captions = [caption for job in ready for caption in job.captions]
        arrays = [array for job in ready for array in job.arrays]
        started = time.perf_counter()
        scores = ready[0].model.forward(captions, arrays, batch_size=self.max_batch)
        self._costs_of(ready[0].model).record(len(arrays), time.perf_counter() - started)
        start = 0
        for job in ready:
            job.scores = scores[start : start + len(job.arrays)]
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
        gather_seconds: float = 0.0,
    ) -> None:
        """`prepare_in_requests`: None decides by the model's device (CPU: the batching thread
        prepares; a GPU: the request threads)."""
        self.fetch = fetch
        self.device = device
        self.prepare_in_requests = prepare_in_requests
        self.max_models = max(1, max_models)
        self.num_threads = num_threads
        self.batcher = Batcher(
            max_batch=max(1, max_batch), num_threads=num_threads, gather_seconds=gather_seconds
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
        self, model: LoadedModel, captions: list[str], images: Sequence[Image.Image | bytes]
    ) -> list[Score]:
        """Scores of (caption, image) pairs, scored in a batch; the images are uploads opened
        by `payloads.image_open` (decoded here: `ImageUndecodable` if they cannot be), Pillow
        images or encoded bytes."""
        if len(captions) != len(images):
            raise ValueError("one caption per image is needed")
        prepare_here = self.prepare_in_requests
        if prepare_here is None:
            prepare_here = not model.on_cpu
        arrays = model.prepare_all(images) if prepare_here else None
        return self.batcher.submit(model, captions, images, arrays)

    def stats(self) -> dict[str, Any]:
        return {
            "models": [ref.id for ref in self.loaded()],
            "loads": self.loads,
            "requests": self.batcher.requests,
            "images": self.batcher.images,
            "forward_passes": self.batcher.passes,
        }
