"""Scoring (prompt, image) pairs with a registered reward model: what the scoring API, the
comparison and active learning call.

The model served for a name is the promoted one, looked up in the database (one indexed query)
at most every REWARD_SCORING_REFRESH_SECONDS per process, so promoting another version
switches every serving process within that interval, without a restart; the process's
engine (`training_bridge.reward_models.scoring.engine`) loads it once and batches concurrent
requests. A request may pin a version instead. Images are uploaded bytes (already opened and
checked by `scoring.payloads`) or finished candidates, read from the default storage by id.

Settings (defaults in brackets): REWARD_MODEL_NAME ["spatial-rm"], REWARD_SCORING_DEVICE
["cpu"; "auto" takes a GPU when there is one], REWARD_SCORING_MAX_BATCH [256] images per
forward pass, REWARD_SCORING_MAX_MODELS [2] held per process, REWARD_SCORING_THREADS [torch's
default; OMP_NUM_THREADS sets it too] intra-op threads, REWARD_SCORING_REFRESH_SECONDS [1.0]
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
from training_bridge.reward_models.scoring.checkpoints import checkpoint_fetch
from training_bridge.reward_models.scoring.engine import LoadedModel, ModelRef, ScoringEngine
from training_bridge.reward_models.scoring.ranking import GroupRanking, group_rank
from training_bridge.reward_models.selectors.reward_models import (
    candidates_for_scoring,
    reward_model_ref,
)

log = logging.getLogger(__name__)

_engine: ScoringEngine | None = None
_engine_lock = threading.Lock()


def _fetch(ref: ModelRef) -> Path:
    return checkpoint_fetch(model_id=ref.id, artifact_key=ref.artifact_key)


def scoring_engine() -> ScoringEngine:
    """This process's engine (made on first use; a forked child makes its own)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            threads = getattr(settings, "REWARD_SCORING_THREADS", None)
            _engine = ScoringEngine(
                fetch=_fetch,
                device=str(getattr(settings, "REWARD_SCORING_DEVICE", "cpu")),
                max_batch=int(getattr(settings, "REWARD_SCORING_MAX_BATCH", 256)),
                max_models=int(getattr(settings, "REWARD_SCORING_MAX_MODELS", 2)),
                num_threads=int(threads) if threads else None,
                max_wait=float(getattr(settings, "REWARD_SCORING_MAX_WAIT_MS", 0)) / 1000,
            )
        return _engine


def _engine_reset() -> None:
    global _engine, _engine_lock, _refs_lock
    _engine = None
    _engine_lock = threading.Lock()
    _refs.clear()
    _refs_lock = threading.Lock()


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


def scoring_model_load(*, ref: ModelRef) -> LoadedModel:
    """The model in this process's engine; a checkpoint that cannot be loaded is a 409."""
    try:
        return scoring_engine().model(ref)
    except DomainError as exc:
        raise Conflict(
            f"{ref.name} v{ref.version} cannot be loaded: {exc.detail}", field="model"
        ) from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
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
    mean: float
    std: float | None
    model_version: int


@dataclass(frozen=True)
class ScoredGroup:
    scores: list[ScoredImage]
    ranking: GroupRanking


@dataclass(frozen=True)
class ScoreResult:
    model: ModelInfo
    scores: list[ScoredImage]
    groups: list[ScoredGroup] | None = None


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
    *, inputs: list[ScoreInput], name: str | None = None, version: int | None = None
) -> ScoreResult:
    """Mean, std and model version per input, with the promoted model of `name` (or the pinned
    `version`)."""
    ref = scoring_ref(name=name, version=version)
    captions, images = _resolve(inputs)
    model = scoring_model_load(ref=ref)
    try:
        scores = scoring_engine().score(model, captions, images)
    except (OSError, ValueError) as exc:  # a stored candidate image that cannot be decoded
        raise ValidationFailed(f"an image cannot be decoded: {exc}", field="images") from exc
    scored = [ScoredImage(s.mean, s.std, ref.version) for s in scores]
    log.debug("reward.score.done model=%s version=%s images=%d", ref.id, ref.version, len(scored))
    return ScoreResult(model=_model_info(model), scores=scored)


def reward_score_groups(
    *,
    groups: list[list[ScoreInput]],
    name: str | None = None,
    version: int | None = None,
    top_k: int | None = None,
) -> ScoreResult:
    """Every group scored in one batch, and ranked within itself (best first) with its top-k
    and bottom-k, as GRPO-style trainers filter a group."""
    flat = [item for group in groups for item in group]
    result = reward_score(inputs=flat, name=name, version=version)
    scored_groups: list[ScoredGroup] = []
    start = 0
    for group in groups:
        scores = result.scores[start : start + len(group)]
        start += len(group)
        ranking = group_rank([s.mean for s in scores], top_k=top_k)
        scored_groups.append(ScoredGroup(scores=scores, ranking=ranking))
    return ScoreResult(model=result.model, scores=result.scores, groups=scored_groups)
