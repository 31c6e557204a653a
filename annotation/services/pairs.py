"""Building pairs from a campaign's candidates (its finished ones: those it rendered and those of
its keys an earlier campaign had made, `campaign_candidates_finished`).

`campaign_pairs_form` is the one place a campaign's pairs are formed: `pairs_build` stores
them, active learning (training_bridge) scores them and queues the ones its model is least
sure of through `pairs_add`.

- same-prompt: two candidates of one prompt; every pair, or k sampled per prompt
  (pairs across generator configs first when `prefer_across_configs`);
- counterfactual: a candidate of a perturbed prompt and one of its original prompt, same
  config and seed by default (`counterfactual_match="config"`: any seed of the same config);
  judged against the ORIGINAL prompt, the original's candidate recorded as intended winner.

A pair is stored once per unordered pair within a queue (a < b, unique; inserts ignore
conflicts), so building twice, or in parallel, adds nothing. Large sets stream in batches:
the `cpu` task (annotation.tasks.pair_build_task) runs the same service. A recorded build
(PairBuild) is owned by one run at a time (`run_token`), which beats (`heartbeat_at`) with
every batch: a second delivery leaves a build whose owner beat within RECOVERY_STALE_SECONDS
alone and takes over a stale one; `pair_builds_recover` publishes again the builds whose
message was lost or whose worker died.
"""

import itertools
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import LabelingQueue, Pair, PairBuild
from annotation.services import quality
from config.celery import stale_cutoff
from config.errors import NotFound, ValidationFailed
from generation_workers.models import Campaign
from generation_workers.selectors.campaigns import campaign_candidates_finished

log = logging.getLogger(__name__)

BATCH = 2000
MAX_SAMPLE_PER_PROMPT = 10_000
MATCHES = ("config_seed", "config")
THUMBNAIL_TASK_BATCH = 200


@dataclass(frozen=True)
class PairBuildCounts:
    created: int
    existing: int


def pair_build_options_check(*, kind: str, options: dict) -> dict:
    """The options of a build, validated and complete; errors name `options.<name>`."""
    if kind not in Pair.Kind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(Pair.Kind.values)}", field="kind")
    if not isinstance(options, dict):
        raise ValidationFailed("options must be an object", field="options")
    known = {
        "sample_per_prompt",
        "prefer_across_configs",
        "counterfactual_match",
        "priority",
        "judgments_needed",
        "seed",
        "make_thumbnails",
        "gold_share",
    }
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValidationFailed(f"unknown option {unknown[0]!r}", field=f"options.{unknown[0]}")
    out = {
        "sample_per_prompt": options.get("sample_per_prompt"),
        "prefer_across_configs": options.get("prefer_across_configs", True),
        "counterfactual_match": options.get("counterfactual_match", "config_seed"),
        "priority": options.get("priority", 0),
        "judgments_needed": options.get("judgments_needed"),
        "seed": options.get("seed", 0),
        "make_thumbnails": options.get("make_thumbnails", True),
        "gold_share": options.get("gold_share", 0.0),
    }

    def _int(name: str, low: int, high: int, *, optional: bool = False) -> None:
        value = out[name]
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationFailed(
                f"must be an integer from {low} to {high}", field=f"options.{name}"
            )

    _int("sample_per_prompt", 1, MAX_SAMPLE_PER_PROMPT, optional=True)
    _int("priority", -32768, 32767)
    _int("judgments_needed", 1, 50, optional=True)
    _int("seed", 0, 2**31 - 1)
    for name in ("prefer_across_configs", "make_thumbnails"):
        if not isinstance(out[name], bool):
            raise ValidationFailed("must be true or false", field=f"options.{name}")
    if out["counterfactual_match"] not in MATCHES:
        raise ValidationFailed(
            f"must be one of {', '.join(MATCHES)}", field="options.counterfactual_match"
        )
    share = out["gold_share"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValidationFailed("must be a number from 0 to 1", field="options.gold_share")
    if share and kind != Pair.Kind.COUNTERFACTUAL:
        raise ValidationFailed(
            "applies to counterfactual pairs only (their intended winner is the answer); mark "
            "other pairs gold one by one",
            field="options.gold_share",
        )
    if kind == Pair.Kind.COUNTERFACTUAL and out["sample_per_prompt"] is not None:
        raise ValidationFailed(
            "applies to same-prompt pairs only", field="options.sample_per_prompt"
        )
    return out


def pairs_build(
    *,
    queue_id: int,
    campaign_id: int,
    kind: str,
    sample_per_prompt: int | None = None,
    prefer_across_configs: bool = True,
    counterfactual_match: str = "config_seed",
    priority: int = 0,
    judgments_needed: int | None = None,
    seed: int = 0,
    make_thumbnails: bool = True,
    gold_share: float = 0.0,
    after_batch: Callable[[], None] | None = None,
) -> PairBuildCounts:
    """Build pairs of `kind` from a campaign's finished candidates into a queue (synchronous).

    Returns how many pairs were new and how many the queue held already. Thumbnails of the
    images involved are queued on the `cpu` queue (make_thumbnails). `after_batch` is called
    after each batch of pairs is stored (a recorded build beats there). `gold_share` of the
    new counterfactual pairs (chosen by a hash of the seed and the pair) become gold pairs
    (services/quality.py: gold at once when the procedural renderer checked the intended
    winner, else proposed for a lead to confirm).
    """
    options = pair_build_options_check(
        kind=kind,
        options={
            "sample_per_prompt": sample_per_prompt,
            "prefer_across_configs": prefer_across_configs,
            "counterfactual_match": counterfactual_match,
            "priority": priority,
            "judgments_needed": judgments_needed,
            "seed": seed,
            "make_thumbnails": make_thumbnails,
            "gold_share": gold_share,
        },
    )
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    needed = options["judgments_needed"] or queue.overlap
    keys = campaign_pairs_form(
        campaign_id=campaign_id,
        kind=kind,
        sample_per_prompt=options["sample_per_prompt"],
        prefer_across_configs=options["prefer_across_configs"],
        counterfactual_match=options["counterfactual_match"],
        seed=options["seed"],
    )
    created = existing = 0
    for batch in _batched(keys, BATCH):
        new, old = _insert(
            queue_id=queue.pk, kind=kind, keys=batch, priority=options["priority"], needed=needed
        )
        created += new
        existing += old
        if options["make_thumbnails"] and new:
            _thumbnails_enqueue(batch)
        if new and options["gold_share"]:
            _gold_choose(queue.pk, batch, share=options["gold_share"], seed=options["seed"])
        if after_batch is not None:
            after_batch()
    log.info(
        "labeling.pairs.built queue=%s campaign=%s kind=%s created=%d existing=%d",
        queue.pk,
        campaign_id,
        kind,
        created,
        existing,
    )
    return PairBuildCounts(created=created, existing=existing)


class PairKey(NamedTuple):
    """A pair as the labeling engine stores it (candidate_a < candidate_b)."""

    candidate_a: int
    candidate_b: int
    prompt_id: int  # judged against: the ORIGINAL prompt of a counterfactual pair
    intended_winner_id: int | None


# (candidate_a, candidate_b, prompt judged against, intended winner or None): a PairKey's fields
_Key = tuple[int, int, int, int | None]


def campaign_pairs_form(
    *,
    campaign_id: int,
    kind: str,
    sample_per_prompt: int | None = None,
    prefer_across_configs: bool = True,
    counterfactual_match: str = "config_seed",
    seed: int = 0,
) -> Iterator[PairKey]:
    """The pairs of `kind` a campaign's finished candidates form, streamed (a campaign with many
    candidates per prompt forms millions of same-prompt pairs). Options as `pairs_build`'s,
    unchecked here; every pair is formed once."""
    campaign_candidates_finished(campaign_id=campaign_id)  # NotFound naming the campaign
    if kind == Pair.Kind.SAME_PROMPT:
        return _same_prompt_keys(
            campaign_id=campaign_id,
            k=sample_per_prompt,
            prefer_across_configs=prefer_across_configs,
            seed=seed,
        )
    if kind == Pair.Kind.COUNTERFACTUAL:
        return _counterfactual_keys(campaign_id=campaign_id, match=counterfactual_match)
    raise ValidationFailed(f"kind must be one of {', '.join(Pair.Kind.values)}", field="kind")


def _same_prompt_keys(
    *, campaign_id: int, k: int | None, prefer_across_configs: bool, seed: int
) -> Iterator[PairKey]:
    rows = (
        campaign_candidates_finished(campaign_id=campaign_id)
        .order_by("prompt_id", "id")
        .values_list("id", "prompt_id", "config_id")
        .iterator(chunk_size=BATCH)
    )
    for prompt_id, group in itertools.groupby(rows, key=lambda r: r[1]):
        cands = [(cid, config) for cid, _, config in group]
        combos = list(itertools.combinations(cands, 2))
        if k is not None and len(combos) > k:
            rng = random.Random(f"{seed}:{prompt_id}")  # noqa: S311 - sampling
            if prefer_across_configs:
                across = [c for c in combos if c[0][1] != c[1][1]]
                within = [c for c in combos if c[0][1] == c[1][1]]
                rng.shuffle(across)
                rng.shuffle(within)
                combos = (across + within)[:k]
            else:
                combos = rng.sample(combos, k)
        for (x, _), (y, _) in combos:
            yield PairKey(min(x, y), max(x, y), prompt_id, None)


def _counterfactual_keys(*, campaign_id: int, match: str) -> Iterator[PairKey]:
    finished = campaign_candidates_finished(campaign_id=campaign_id)
    perturbed = (
        finished.filter(prompt__parent__isnull=False)
        .order_by("id")
        .values_list("id", "prompt__parent_id", "config_id", "seed")
        .iterator(chunk_size=BATCH)
    )
    for chunk in _batched(perturbed, BATCH):
        parents = {parent for _, parent, _, _ in chunk}
        originals: dict[tuple, list[int]] = defaultdict(list)
        for cid, prompt_id, config, cseed in (
            finished.filter(prompt_id__in=parents)
            .order_by("id")
            .values_list("id", "prompt_id", "config_id", "seed")
        ):
            key = (prompt_id, config, cseed) if match == "config_seed" else (prompt_id, config)
            originals[key].append(cid)
        for cid, parent, config, cseed in chunk:
            key = (parent, config, cseed) if match == "config_seed" else (parent, config)
            for original in originals.get(key, ()):
                yield PairKey(min(cid, original), max(cid, original), parent, original)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _insert(
    *, queue_id: int, kind: str, keys: list[_Key], priority: int, needed: int
) -> tuple[int, int]:
    """Insert a batch (conflicts ignored); returns (new, already there)."""
    wanted = {(a, b): (prompt, winner) for a, b, prompt, winner in keys}
    there = set(
        Pair.objects.filter(
            queue_id=queue_id, candidate_a_id__in={a for a, _ in wanted}
        ).values_list("candidate_a_id", "candidate_b_id")
    )
    rows = [
        Pair(
            queue_id=queue_id,
            candidate_a_id=a,
            candidate_b_id=b,
            kind=kind,
            prompt_id=prompt,
            intended_winner_id=winner,
            priority=priority,
            judgments_needed=needed,
        )
        for (a, b), (prompt, winner) in wanted.items()
        if (a, b) not in there
    ]
    Pair.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)
    return len(rows), len(wanted) - len(rows)


def _gold_choose(queue_id: int, keys: list[_Key], *, share: float, seed: int) -> None:
    """The gold share among a batch's pairs that nobody has been served yet."""
    untouched = Pair.objects.filter(
        queue_id=queue_id,
        candidate_a_id__in={key[0] for key in keys},
        fresh=True,
        is_gold=False,
        gold_source="",
        intended_winner__isnull=False,
    ).values_list("pk", "candidate_a_id", "candidate_b_id")
    wanted = {(key[0], key[1]) for key in keys}
    quality.pairs_gold_choose(
        pair_ids=[pk for pk, a, b in untouched if (a, b) in wanted], share=share, seed=seed
    )


def pairs_add(
    *,
    queue_id: int,
    kind: str,
    keys: list[_Key],
    priority: int = 0,
    judgments_needed: int | None = None,
) -> PairBuildCounts:
    """Add chosen pairs to a queue, as (candidate_a, candidate_b, prompt, intended winner)
    with a < b, in the given order (ids follow it); conflicts ignored, thumbnails queued.

    For services that pick the pairs themselves (active learning); a campaign's pairs are
    built with `pairs_build`. Returns how many were new and how many the queue held already.
    """
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    if kind not in Pair.Kind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(Pair.Kind.values)}", field="kind")
    created = existing = 0
    for batch in _batched(keys, BATCH):
        new, old = _insert(
            queue_id=queue.pk,
            kind=kind,
            keys=batch,
            priority=priority,
            needed=judgments_needed or queue.overlap,
        )
        created += new
        existing += old
        if new:
            _thumbnails_enqueue(batch)
    return PairBuildCounts(created=created, existing=existing)


def _thumbnails_enqueue(keys: list[_Key]) -> None:
    from annotation.tasks import thumbnails_task

    ids = sorted({a for a, _, _, _ in keys} | {b for _, b, _, _ in keys})
    for chunk in _batched(ids, THUMBNAIL_TASK_BATCH):
        thumbnails_task.delay_on_commit(candidate_ids=chunk)


def pair_build_start(
    *,
    queue_id: int,
    campaign_id: int,
    kind: str,
    options: dict | None = None,
    created_by: AbstractBaseUser | None = None,
) -> PairBuild:
    """Record a build and run it on the `cpu` queue (for sets too large for one request)."""
    options = pair_build_options_check(kind=kind, options=options or {})
    if not LabelingQueue.objects.filter(pk=queue_id).exists():
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    from annotation.tasks import pair_build_task

    with transaction.atomic():
        build = PairBuild.objects.create(
            queue_id=queue_id,
            campaign_id=campaign_id,
            kind=kind,
            options=options,
            created_by=created_by,
            heartbeat_at=timezone.now(),  # published now: the sweep counts from here
        )
        pair_build_task.delay_on_commit(pair_build_id=build.pk)
    log.info("labeling.pairs.build_queued build=%s queue=%s kind=%s", build.pk, queue_id, kind)
    return build


class PairBuildSuperseded(Exception):
    """Another run took the build over; this one stops without touching it."""


def pair_build_run(*, pair_build_id: int) -> PairBuild:
    """Run a recorded build (the task's body). Safe to run again: pairs are stored once, and a
    build that is done, failed or owned by a live run is left alone."""
    token = uuid.uuid4()
    now = timezone.now()
    unowned = Q(status=PairBuild.Status.QUEUED) | Q(run_token__isnull=True)
    stale = Q(status=PairBuild.Status.RUNNING) & (
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_cutoff(now=now))
    )
    claimed = (
        PairBuild.objects.filter(
            pk=pair_build_id, status__in=[PairBuild.Status.QUEUED, PairBuild.Status.RUNNING]
        )
        .filter(unowned | stale)
        .update(status=PairBuild.Status.RUNNING, run_token=token, heartbeat_at=now, started_at=now)
    )
    build = PairBuild.objects.get(pk=pair_build_id)
    if not claimed:
        return build  # done, failed or owned by a live run: a redelivered message does nothing
    owned = PairBuild.objects.filter(pk=build.pk, run_token=token)

    def beat() -> None:
        if not owned.update(heartbeat_at=timezone.now()):
            raise PairBuildSuperseded(build.pk)

    try:
        counts = pairs_build(
            queue_id=build.queue_id, campaign_id=build.campaign_id, kind=build.kind,
            after_batch=beat, **build.options,
        )  # fmt: skip
    except PairBuildSuperseded:
        log.warning("labeling.pairs.build_superseded build=%s", build.pk)
    except (ValidationFailed, NotFound) as exc:
        owned.update(
            status=PairBuild.Status.FAILED,
            error=str(exc),
            finished_at=timezone.now(),
            run_token=None,
        )
        log.warning("labeling.pairs.build_failed build=%s error=%s", build.pk, exc)
    except BaseException:
        # Let the task's retry (or the sweep) run it again from the start.
        owned.update(status=PairBuild.Status.QUEUED, run_token=None)
        raise
    else:
        owned.update(
            status=PairBuild.Status.DONE,
            pairs_created=counts.created,
            pairs_existing=counts.existing,
            error="",
            finished_at=timezone.now(),
            run_token=None,
        )
    build.refresh_from_db()
    return build


def pair_builds_recover(
    *, now: datetime | None = None, stale_after: float | None = None
) -> list[int]:
    """Publish again the builds queued or running with no beat for `stale_after` seconds
    (default RECOVERY_STALE_SECONDS): their message was lost, or their worker died. A stale
    one goes back to queued without its owner (compare-and-set on its beat, so two sweeps
    never both publish it). Returns their ids."""
    from annotation.tasks import pair_build_task

    now = now or timezone.now()
    cutoff = stale_cutoff(now=now, stale_after=stale_after)
    stale = (
        PairBuild.objects.filter(status__in=[PairBuild.Status.QUEUED, PairBuild.Status.RUNNING])
        .annotate(beat=Coalesce("heartbeat_at", "created_at"))
        .filter(beat__lt=cutoff)
        .values_list("pk", "status", "heartbeat_at")
    )
    recovered = []
    for pk, status, beat in stale:
        with transaction.atomic():
            taken = PairBuild.objects.filter(pk=pk, status=status, heartbeat_at=beat).update(
                status=PairBuild.Status.QUEUED, run_token=None, heartbeat_at=now
            )
            if taken:
                pair_build_task.delay_on_commit(pair_build_id=pk)
                recovered.append(pk)
    if recovered:
        log.warning("labeling.pairs.build_recovered builds=%s", recovered)
    return recovered
