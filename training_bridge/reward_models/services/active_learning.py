"""Active learning: the pairs the current reward model is least sure of go to the annotators.

`active_learning_queue` asks the labeling engine for the pairs a campaign's finished candidates
form (`annotation.services.pairs.campaign_pairs_form`: every same-prompt pair, and the
counterfactual pairs of the same config and seed, judged against the ORIGINAL prompt with the
original's image as intended winner), scores their images with a reward model (the promoted
one of a name, or one chosen by id), ranks every pair by the model's uncertainty
z = |mean_a - mean_b| / sqrt(std_a^2 + std_b^2) (`scoring.ranking`), and queues the `pairs`
of smallest z into a labeling queue, the least certain first (lower ids are served first
at equal priority). The queue is active and open to its groups (default: every annotator), so
the pairs are labelable at once.

Pairs that already sit in another queue are left out (they are being labeled there) unless
`exclude_queued` is false; pairs already in the target queue count as chosen, so running the
same request again (a redelivered task) queues nothing twice. The pairs are written by the
labeling engine's own pair insertion (annotation.services.pairs), with its thumbnails task.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import LabelingQueue, Pair
from annotation.services.pairs import PairKey, campaign_pairs_form, pairs_add
from config.errors import Conflict, NotFound, ValidationFailed
from generation_workers.models import Campaign
from generation_workers.selectors.campaigns import campaign_candidates_finished
from training_bridge.models import RewardModel
from training_bridge.publishing import ACTIVE_LEARNING_RUN, task_send_on_commit
from training_bridge.reward_models.scoring.ranking import least_certain, pair_uncertainty
from training_bridge.reward_models.selectors.reward_models import (
    CandidateRow,
    candidates_for_scoring,
    model_ref_of,
    reward_model_default_name,
    reward_model_get,
    reward_model_promoted,
)

log = logging.getLogger(__name__)

KINDS = (Pair.Kind.COUNTERFACTUAL.value, Pair.Kind.SAME_PROMPT.value)
MAX_PAIRS = 10_000
SCORE_CHUNK = 256
INSTRUCTIONS = (
    "Choose the image that shows the prompt's objects where its spatial relations put them. "
    "Answer **tie** when both are equally right, **both wrong** when neither is."
)


def sync_max_candidates() -> int:
    return int(getattr(settings, "REWARD_ACTIVE_LEARNING_SYNC_MAX_CANDIDATES", 1000))


@dataclass(frozen=True)
class UncertainPair:
    candidate_a: int  # a < b, as the labeling engine stores pairs
    candidate_b: int
    kind: str
    prompt_id: int  # judged against
    intended_winner: int | None
    z: float
    mean_a: float
    std_a: float | None
    mean_b: float
    std_b: float | None


@dataclass(frozen=True)
class ActiveLearningResult:
    queue: LabelingQueue
    model: RewardModel
    candidates_scored: int
    pairs_considered: int
    pairs_queued: int
    pairs_existing: int
    selected: list[UncertainPair]


def active_learning_model(*, model_id: int | None, model_name: str | None) -> RewardModel:
    if model_id is not None:
        return reward_model_get(model_id=model_id)
    name = model_name or reward_model_default_name()
    model = reward_model_promoted(name=name)
    if model is None:
        raise Conflict(f"no version of {name!r} is promoted; promote one first", field="model")
    return model


def _int_in(value: object, low: int, high: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(f"an integer from {low} to {high}", field=field)


def active_learning_options_check(
    *, pairs: int, kinds: list[str] | tuple[str, ...], priority: int = 0
) -> list[str]:
    _int_in(pairs, 1, MAX_PAIRS, "pairs")
    _int_in(priority, -32768, 32767, "priority")
    kinds = list(dict.fromkeys(kinds or ()))
    unknown = [kind for kind in kinds if kind not in KINDS]
    if not kinds or unknown:
        raise ValidationFailed(f"choose among {', '.join(KINDS)}", field="kinds")
    return kinds


def active_learning_queue_resolve(
    *,
    campaign_id: int,
    model: RewardModel,
    queue_id: int | None = None,
    queue_name: str | None = None,
    allowed_group_names: tuple[str, ...] = ("annotator",),
    overlap: int = 3,
    created_by: AbstractBaseUser | None = None,
) -> LabelingQueue:
    """The target queue: an existing one by id, or one made (or found) by name."""
    from annotation.services.queues import labeling_queue_create

    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    if queue_id is not None:
        queue = LabelingQueue.objects.filter(pk=queue_id).first()
        if queue is None:
            raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
        return queue
    return labeling_queue_create(
        name=queue_name or f"active-learning-c{campaign_id}-m{model.pk}",
        instructions=INSTRUCTIONS,
        overlap=overlap,
        allowed_group_names=allowed_group_names,
        created_by=created_by,
        exist_ok=True,
    )


def _pairs_of(*, campaign_id: int, kinds: list[str]) -> Iterator[tuple[str, PairKey]]:
    """The pairs the labeling engine forms from the campaign, by kind."""
    for kind in kinds:
        for key in campaign_pairs_form(campaign_id=campaign_id, kind=kind):
            yield kind, key


def _items_score(model: RewardModel, rows: dict[int, CandidateRow], items: list[tuple[int, int]]):
    """Scores of (candidate, prompt judged against) items, by item. A pair's prompt is one of
    its candidates' own (a counterfactual pair's original is the intended winner's)."""
    from training_bridge.datasets.services.artifacts import StorageImageReader
    from training_bridge.reward_models.services.scoring import scoring_engine, scoring_model_load

    loaded = scoring_model_load(ref=model_ref_of(model))
    engine = scoring_engine()
    keys = {row.id: row.storage_key for row in rows.values()}
    texts = {row.prompt_id: row.prompt_text for row in rows.values()}
    scores = {}
    reader = StorageImageReader()
    try:
        for start in range(0, len(items), SCORE_CHUNK):
            chunk = items[start : start + SCORE_CHUNK]
            images = reader([keys[candidate] for candidate, _ in chunk])
            captions = [texts[prompt] for _, prompt in chunk]
            for item, score in zip(chunk, engine.score(loaded, captions, images), strict=True):
                scores[item] = score
    finally:
        reader.close()
    return scores


def _queued_elsewhere(*, campaign_id: int, queue_id: int) -> set[tuple[int, int]]:
    candidates = campaign_candidates_finished(campaign_id=campaign_id).values("id")
    return set(
        Pair.objects.filter(candidate_a_id__in=candidates)
        .exclude(queue_id=queue_id)
        .values_list("candidate_a_id", "candidate_b_id")
        .iterator(chunk_size=5000)
    )


def _pairs_insert(*, queue: LabelingQueue, selected: list[UncertainPair], priority: int):
    """Through the labeling engine's pair insertion (a < b, unique per queue, conflicts
    ignored), in runs of one kind so that ids follow the uncertainty order."""
    created = existing = 0
    with transaction.atomic():
        for kind, run in itertools.groupby(selected, key=lambda pair: pair.kind):
            keys = [(p.candidate_a, p.candidate_b, p.prompt_id, p.intended_winner) for p in run]
            counts = pairs_add(queue_id=queue.pk, kind=kind, keys=keys, priority=priority)
            created += counts.created
            existing += counts.existing
    return created, existing


def active_learning_queue(
    *,
    campaign_id: int,
    model_id: int | None = None,
    model_name: str | None = None,
    queue_id: int | None = None,
    queue_name: str | None = None,
    pairs: int = 100,
    kinds: list[str] | tuple[str, ...] = KINDS,
    priority: int = 0,
    exclude_queued: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> ActiveLearningResult:
    """Score the campaign's candidates and queue the `pairs` least certain pairs."""
    kinds = active_learning_options_check(pairs=pairs, kinds=kinds, priority=priority)
    model = active_learning_model(model_id=model_id, model_name=model_name)
    queue = active_learning_queue_resolve(
        campaign_id=campaign_id, model=model, queue_id=queue_id, queue_name=queue_name,
        created_by=created_by,
    )  # fmt: skip
    # the pairs are formed twice (items to score, then ranking) rather than held: a
    # campaign with many candidates per prompt offers millions of same-prompt pairs
    items = sorted(
        {(c, key.prompt_id) for _, key in _pairs_of(campaign_id=campaign_id, kinds=kinds)
         for c in key[:2]}
    )  # fmt: skip
    rows = candidates_for_scoring(candidate_ids=sorted({c for c, _ in items}))
    scores = _items_score(model, rows, items) if items else {}
    skip = set()
    if exclude_queued:
        skip = _queued_elsewhere(campaign_id=campaign_id, queue_id=queue.pk)

    considered = 0

    def ranked() -> Iterator[tuple[float, int, int, str, int, int | None]]:
        nonlocal considered
        for kind, (a, b, prompt, winner) in _pairs_of(campaign_id=campaign_id, kinds=kinds):
            considered += 1
            if (a, b) in skip:
                continue
            sa, sb = scores[(a, prompt)], scores[(b, prompt)]
            yield pair_uncertainty(sa.mean, sa.std, sb.mean, sb.std), a, b, kind, prompt, winner

    chosen = least_certain(ranked(), pairs)
    selected = [
        UncertainPair(
            candidate_a=a,
            candidate_b=b,
            kind=kind,
            prompt_id=prompt,
            intended_winner=winner,
            z=z,
            mean_a=scores[(a, prompt)].mean,
            std_a=scores[(a, prompt)].std,
            mean_b=scores[(b, prompt)].mean,
            std_b=scores[(b, prompt)].std,
        )  # fmt: skip
        for z, a, b, kind, prompt, winner in chosen
    ]
    created, existing = _pairs_insert(queue=queue, selected=selected, priority=priority)
    log.info(
        "reward.active_learning.queued model=%s campaign=%s queue=%s candidates=%d "
        "considered=%d queued=%d existing=%d",
        model.pk, campaign_id, queue.pk, len(rows), considered, created, existing,
    )  # fmt: skip
    return ActiveLearningResult(
        queue=queue, model=model, candidates_scored=len(items), pairs_considered=considered,
        pairs_queued=created, pairs_existing=existing, selected=selected,
    )  # fmt: skip


@dataclass(frozen=True)
class ActiveLearningStart:
    queue: LabelingQueue
    model: RewardModel
    result: ActiveLearningResult | None  # None: queued on the `cpu` queue


def active_learning_start(
    *,
    campaign_id: int,
    model_id: int | None = None,
    model_name: str | None = None,
    queue_id: int | None = None,
    queue_name: str | None = None,
    pairs: int = 100,
    kinds: list[str] | tuple[str, ...] = KINDS,
    priority: int = 0,
    exclude_queued: bool = True,
    run_now: bool | None = None,
    created_by: AbstractBaseUser | None = None,
) -> ActiveLearningStart:
    """What the admin action and the API call: checks everything, makes the queue, then runs
    at once for a small campaign (at most REWARD_ACTIVE_LEARNING_SYNC_MAX_CANDIDATES finished
    candidates, or `run_now`) or on the `cpu` queue."""
    kinds = active_learning_options_check(pairs=pairs, kinds=kinds, priority=priority)
    model = active_learning_model(model_id=model_id, model_name=model_name)
    queue = active_learning_queue_resolve(
        campaign_id=campaign_id, model=model, queue_id=queue_id, queue_name=queue_name,
        created_by=created_by,
    )  # fmt: skip
    options = {"campaign_id": campaign_id, "model_id": model.pk, "queue_id": queue.pk,
               "pairs": pairs, "kinds": kinds, "priority": priority,
               "exclude_queued": exclude_queued}  # fmt: skip
    if run_now is None:
        count = campaign_candidates_finished(campaign_id=campaign_id).count()
        run_now = count <= sync_max_candidates()
    if run_now:
        result = active_learning_queue(**options, created_by=created_by)
        return ActiveLearningStart(queue=queue, model=model, result=result)
    task_send_on_commit(ACTIVE_LEARNING_RUN, kwargs=options)
    log.info("reward.active_learning.requested model=%s campaign=%s queue=%s", model.pk,
             campaign_id, queue.pk)  # fmt: skip
    return ActiveLearningStart(queue=queue, model=model, result=None)
