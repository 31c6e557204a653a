"""Scoring (prompt, image) pairs with a registered reward model: what the scoring API, the
comparison and active learning call.

The model served for a name is the promoted one, looked up in the database (one indexed query)
at most every REWARD_SCORING_REFRESH_SECONDS per process, so promoting another version
switches every serving process within that interval, without a restart; the process's
engine (`training_bridge.reward_models.scoring.engine`) loads it once and batches concurrent
requests. A request may pin a version instead. Images are uploaded bytes (already opened and
checked by `scoring.payloads`) or finished candidates, read from the default storage by id.

Errors: permanent problems are 4xx (a bad payload names its field, an unknown model is a 404,
no promoted model or a checkpoint that cannot load a 409); only retryable ones are 503 (the
engine has more images waiting than REWARD_SCORING_MAX_PENDING, `EngineBusy`; the checkpoint's
storage could not be read, `ModelUnavailable`), with a Retry-After. With `per_item`, an upload
whose pixels cannot be decoded fails only its own item (`ScoredImage.failure`).

A serving process loads the promoted model when it starts (`scoring_preload_start`, called by
config/wsgi.py, which only WSGI servers import: manage.py commands and the tests do not pay),
in a thread, so the server answers at once; a request that needs the model meanwhile waits for
that one load.

Settings (defaults in brackets): REWARD_MODEL_NAME ["spatial-rm"], REWARD_SCORING_DEVICE
["cpu"; "auto" takes a GPU when there is one], REWARD_SCORING_MAX_BATCH [256] images per
forward pass, REWARD_SCORING_MAX_MODELS [2] held per process, REWARD_SCORING_THREADS [1]
torch intra-op threads of the forward passes (more cores: more worker processes;
bench/scoring/RESULTS.md), REWARD_SCORING_MAX_PENDING [1024] images waiting in a process
before it answers 503, REWARD_SCORING_PRELOAD [True], REWARD_SCORING_REFRESH_SECONDS [1.0]
how long a process reuses its lookup of the promoted model, REWARD_SCORING_MAX_WAIT_MS [0] how
long a forward pass with room waits for more requests (engine.py), REWARD_MODEL_CACHE_DIR
[var/cache/reward-models].
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image

from config.errors import Conflict, DomainError, ValidationFailed
from training_bridge import metrics
from training_bridge.reward_models.scoring.checkpoints import checkpoint_fetch
from training_bridge.reward_models.scoring.engine import LoadedModel, ModelRef, ScoringEngine
from training_bridge.reward_models.scoring.payloads import ImageUndecodable
from training_bridge.reward_models.scoring.ranking import (
    GroupStats,
    group_advantages,
    group_rank,
    pair_preference,
)
from training_bridge.reward_models.selectors.reward_models import (
    candidates_for_scoring,
    reward_model_ref,
)

log = logging.getLogger(__name__)

_engine: ScoringEngine | None = None
_engine_lock = threading.Lock()
DEFAULT_THREADS = 1  # see REWARD_SCORING_THREADS above


class ModelUnavailable(DomainError):
    """The checkpoint could not be fetched or read just now (storage, disk): retry shortly."""

    status_code = 503
    code = "model_unavailable"
    retry_after_seconds = 5


def _fetch(ref: ModelRef) -> Path:
    return checkpoint_fetch(model_id=ref.id, artifact_key=ref.artifact_key)


def scoring_engine() -> ScoringEngine:
    """This process's engine (made on first use; a forked child makes its own)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            threads = getattr(settings, "REWARD_SCORING_THREADS", None) or DEFAULT_THREADS
            _engine = ScoringEngine(
                fetch=_fetch,
                device=str(getattr(settings, "REWARD_SCORING_DEVICE", "cpu")),
                max_batch=int(getattr(settings, "REWARD_SCORING_MAX_BATCH", 256)),
                max_models=int(getattr(settings, "REWARD_SCORING_MAX_MODELS", 2)),
                num_threads=int(threads),
                max_wait=float(getattr(settings, "REWARD_SCORING_MAX_WAIT_MS", 0)) / 1000,
            )
        return _engine


def _engine_reset() -> None:
    global _engine, _engine_lock, _refs_lock
    _engine = None
    _engine_lock = threading.Lock()
    _refs.clear()
    _refs_lock = threading.Lock()
    if _preload_wanted:  # a server that preloads before it forks (gunicorn --preload)
        scoring_preload_start()


_refs: dict[tuple[str | None, int | None], tuple[float, ModelRef]] = {}  # -> (looked up at, ref)
_refs_lock = threading.Lock()


def scoring_ref(*, name: str | None = None, version: int | None = None) -> ModelRef:
    """The model to serve (`reward_model_ref`), reused while the lookup is younger than
    REWARD_SCORING_REFRESH_SECONDS (read at each call): one query per interval and process
    instead of one per request."""
    ttl = float(getattr(settings, "REWARD_SCORING_REFRESH_SECONDS", 1.0))
    key = (name, version)
    now = time.monotonic()
    with _refs_lock:
        found = _refs.get(key)
    if found is not None and now - found[0] < ttl:
        return found[1]
    ref = reward_model_ref(name=name, version=version)
    with _refs_lock:
        _refs[key] = (now, ref)
    return ref


os.register_at_fork(after_in_child=_engine_reset)
_preload_wanted = False


def scoring_preload(*, name: str | None = None) -> ModelRef | None:
    """Load the promoted model of `name` (default REWARD_MODEL_NAME) into this process's
    engine and run one image through it (the batching thread starts, torch makes its first
    pass's allocations); None (logged) when there is none or it cannot load: a server still
    starts."""
    started = time.monotonic()
    try:
        ref = scoring_ref(name=name)
        model = scoring_model_load(ref=ref)
        scoring_engine().score(model, ["warm-up"], [Image.new("RGB", (64, 64))])
    except DomainError as exc:
        log.warning("reward.preload.skipped detail=%s", exc)
        return None
    log.info(
        "reward.preload.done model=%s version=%s seconds=%.2f",
        ref.id, ref.version, time.monotonic() - started,
    )  # fmt: skip
    return ref


def scoring_preload_start() -> threading.Thread | None:
    """`scoring_preload` in a thread of this process, if REWARD_SCORING_PRELOAD (a serving
    process's start: config/wsgi.py). Requests are answered meanwhile; one that needs the model
    waits for this load instead of starting its own."""
    global _preload_wanted
    if not getattr(settings, "REWARD_SCORING_PRELOAD", True):
        return None
    _preload_wanted = True

    def run() -> None:
        from django.db import connection

        try:
            scoring_preload()
        except Exception:  # the database not migrated or not up yet: the server starts anyway
            log.exception("reward.preload.failed")
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="reward-scoring-preload", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class ScoringStatus:
    ref: ModelRef | None  # the promoted model of REWARD_MODEL_NAME; None: nothing to serve
    loaded: bool  # already in this process's engine
    detail: str = ""


def scoring_status() -> ScoringStatus:
    """What this process would serve by default, and whether it holds it already (a health
    check: nothing is loaded here)."""
    try:
        ref = scoring_ref()
    except DomainError as exc:
        return ScoringStatus(ref=None, loaded=False, detail=exc.detail)
    return ScoringStatus(ref=ref, loaded=ref in scoring_engine().loaded())


def scoring_model_load(*, ref: ModelRef) -> LoadedModel:
    """The model in this process's engine; a checkpoint that cannot be loaded is a 409, its
    storage not answering a 503."""
    try:
        return scoring_engine().model(ref)
    except DomainError as exc:
        raise Conflict(
            f"{ref.name} v{ref.version} cannot be loaded: {exc.detail}", field="model"
        ) from exc
    except OSError as exc:  # storage or disk: may work on the next try
        log.exception("reward.model.load_unavailable model=%s", ref.id)
        raise ModelUnavailable(
            f"{ref.name} v{ref.version} cannot be read just now: {type(exc).__name__}: {exc}",
            field="model",
        ) from exc
    except (ValueError, KeyError, RuntimeError) as exc:
        log.exception("reward.model.load_failed model=%s", ref.id)
        raise Conflict(
            f"{ref.name} v{ref.version} cannot be loaded: {type(exc).__name__}: {exc}",
            field="model",
        ) from exc


@dataclass(frozen=True)
class ScoreInput:
    """One image to score: uploaded (`image`) or a finished candidate (`candidate_id`); the
    prompt defaults to the candidate's own. `field` names it in errors (`items[3]`)."""

    field: str
    prompt: str | None = None
    image: Image.Image | None = None
    candidate_id: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    version: int
    backbone: str
    head: str


@dataclass(frozen=True)
class ScoredImage:
    mean: float | None
    std: float | None
    model_version: int
    failure: str | None = None  # per item: why this image has no score (mean and std None)


@dataclass(frozen=True)
class ScoredGroup:
    """A group's scores with, per position, its rank (1 = best) and advantage; the failed
    images (per item) have neither and are left out of the ranking and the statistics."""

    scores: list[ScoredImage]
    ranking: list[int]  # positions, best first
    ranks: list[int | None]
    top: list[int]
    bottom: list[int]
    advantages: list[float | None]
    stats: GroupStats | None  # None: no image of the group was scored


@dataclass(frozen=True)
class ScoredPair:
    a: ScoredImage
    b: ScoredImage
    p_a_over_b: float | None  # None when either side failed


@dataclass(frozen=True)
class ScoreResult:
    model: ModelInfo
    scores: list[ScoredImage]
    groups: list[ScoredGroup] | None = None
    pairs: list[ScoredPair] | None = None

    @property
    def failed(self) -> list[int]:
        return [i for i, s in enumerate(self.scores) if s.failure is not None]


def _resolve(inputs: list[ScoreInput]) -> tuple[list[str], list[Image.Image | bytes]]:
    """Captions and images of the inputs (candidates' images read from the storage)."""
    from training_bridge.datasets.services.artifacts import StorageImageReader

    wanted = [item.candidate_id for item in inputs if item.candidate_id is not None]
    rows = candidates_for_scoring(candidate_ids=wanted) if wanted else {}
    captions: list[str] = []
    images: list[Image.Image | bytes | None] = []
    keys: dict[int, str] = {}
    for position, item in enumerate(inputs):
        if item.candidate_id is not None:
            row = rows.get(item.candidate_id)
            if row is None:
                raise ValidationFailed(
                    f"no finished candidate {item.candidate_id}", field=f"{item.field}.candidate"
                )
            keys[position] = row.storage_key
            captions.append(item.prompt or row.prompt_text)
            images.append(None)
        else:
            if item.image is None or not item.prompt:
                raise ValidationFailed("a prompt and an image are needed", field=item.field)
            captions.append(item.prompt)
            images.append(item.image)
    if keys:
        reader = StorageImageReader()
        try:
            for position, data in zip(keys, reader(list(keys.values())), strict=True):
                images[position] = data
        finally:
            reader.close()
    return captions, images  # type: ignore[return-value]


def _model_info(model: LoadedModel) -> ModelInfo:
    ref = model.ref
    return ModelInfo(ref.id, ref.name, ref.version, model.backbone, model.head)


def reward_score(
    *,
    inputs: list[ScoreInput],
    name: str | None = None,
    version: int | None = None,
    per_item: bool = False,
) -> ScoreResult:
    """Mean, std and model version per input, with the promoted model of `name` (or the pinned
    `version`). `per_item`: an upload that cannot be decoded gets its `failure` and the others
    their scores; otherwise it is `ImageUndecodable` (its position) for the whole request."""
    ref = scoring_ref(name=name, version=version)
    captions, images = _resolve(inputs)
    model = scoring_model_load(ref=ref)
    started = time.perf_counter()
    try:
        scores = scoring_engine().score(
            model, captions, images, per_item=per_item,
            max_pending=int(getattr(settings, "REWARD_SCORING_MAX_PENDING", 1024)),
        )  # fmt: skip
    except ImageUndecodable:
        raise
    except (OSError, ValueError) as exc:  # a stored candidate image that cannot be decoded
        raise ValidationFailed(f"an image cannot be decoded: {exc}", field="images") from exc
    scored = [
        ScoredImage(None, None, ref.version, failure=s.detail)
        if isinstance(s, ImageUndecodable)
        else ScoredImage(s.mean, s.std, ref.version)
        for s in scores
    ]
    metrics.scoring_observed(seconds=time.perf_counter() - started, images=len(scored))
    log.debug("reward.score.done model=%s version=%s images=%d", ref.id, ref.version, len(scored))
    return ScoreResult(model=_model_info(model), scores=scored)


def reward_score_groups(
    *,
    groups: list[list[ScoreInput]],
    name: str | None = None,
    version: int | None = None,
    top_k: int | None = None,
    per_item: bool = False,
) -> ScoreResult:
    """Every group scored in one batch, and ranked within itself (best first) with its top-k
    and bottom-k, as GRPO-style trainers filter a group, and each image's group-normalised
    advantage (`ranking.group_advantages`: ties and std 0 there)."""
    flat = [item for group in groups for item in group]
    result = reward_score(inputs=flat, name=name, version=version, per_item=per_item)
    scored_groups: list[ScoredGroup] = []
    start = 0
    for group in groups:
        scores = result.scores[start : start + len(group)]
        start += len(group)
        scored_groups.append(_group_scored(scores, top_k=top_k))
    return ScoreResult(model=result.model, scores=result.scores, groups=scored_groups)


def _group_scored(scores: list[ScoredImage], *, top_k: int | None) -> ScoredGroup:
    kept = [i for i, s in enumerate(scores) if s.failure is None]
    means = [scores[i].mean for i in kept]
    ranks: list[int | None] = [None] * len(scores)
    advantages: list[float | None] = [None] * len(scores)
    if not kept:
        return ScoredGroup(scores, [], ranks, [], [], advantages, None)
    ranking = group_rank(means, top_k=top_k)
    stats = group_advantages(means)
    for j, i in enumerate(kept):
        ranks[i] = ranking.ranks[j]
        advantages[i] = stats.advantages[j]
    return ScoredGroup(
        scores=scores,
        ranking=[kept[j] for j in ranking.ranking],
        ranks=ranks,
        top=[kept[j] for j in ranking.top],
        bottom=[kept[j] for j in ranking.bottom],
        advantages=advantages,
        stats=stats,
    )


def reward_score_pairs(
    *,
    pairs: list[tuple[ScoreInput, ScoreInput]],
    name: str | None = None,
    version: int | None = None,
    per_item: bool = False,
) -> ScoreResult:
    """Both images of every pair scored in one batch, and P(a preferred over b) of each pair
    from their means and stds (`ranking.pair_preference`)."""
    flat = [item for pair in pairs for item in pair]
    result = reward_score(inputs=flat, name=name, version=version, per_item=per_item)
    scored = []
    for k in range(len(pairs)):
        a, b = result.scores[2 * k], result.scores[2 * k + 1]
        p = None
        if a.failure is None and b.failure is None:
            p = pair_preference(a.mean, a.std, b.mean, b.std)
        scored.append(ScoredPair(a=a, b=b, p_a_over_b=p))
    return ScoreResult(model=result.model, scores=result.scores, pairs=scored)
