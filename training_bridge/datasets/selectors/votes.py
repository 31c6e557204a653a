"""The counted votes of selected pairs: which judgments count and what each one says.

A judgment counts when it falls in the spec's time range, its annotator passes the annotator
filter (a list; or `quality`: a trust score of at least `min_quality`) and, with
`exclude_paused`, is not paused or disqualified in the pair's queue, and its answer to the
spec's criterion is one of `count_choices`. The answer to the primary criterion (each queue's
first) is the judgment's `choice`; to another, its `criteria_choices` entry (a skip answers
every criterion with a skip). Sides are mapped to the pair's candidates through the judgment's
`left_candidate`, giving votes a / b / tie / both_wrong / skip.

An annotator's trust in a queue (one rule, used by the quality filter and by `trust_weighted`):
their gold posterior in that queue (`AnnotatorQueueState.trust`), else their overall
`AnnotatorProfile.quality_score` (gold over every queue), else the aggregation model's estimate
(`AnnotatorProfile.model_score`: their accuracy in the newest version frozen with Dawid-Skene),
else unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform

from annotation.models import AnnotatorProfile, AnnotatorQueueState, Judgment, LabelingQueue
from training_bridge.datasets.aggregation.specs import FilterSpec


@dataclass(frozen=True)
class Vote:
    kind: str  # a / b / tie / both_wrong / skip
    annotator: int
    judged_at: datetime
    left_is_a: bool


@dataclass(frozen=True)
class TrustScores:
    by_queue: dict[tuple[int, int], float] = field(default_factory=dict)
    overall: dict[int, float] = field(default_factory=dict)

    def of(self, queue_id: int, annotator_id: int) -> float | None:
        found = self.by_queue.get((queue_id, annotator_id))
        return found if found is not None else self.overall.get(annotator_id)


def trust_scores(*, queue_ids: tuple[int, ...] = ()) -> TrustScores:
    """Every known trust score (of the given queues, or of all)."""
    states = AnnotatorQueueState.objects.filter(trust__isnull=False)
    if queue_ids:
        states = states.filter(queue_id__in=queue_ids)
    profiles = AnnotatorProfile.objects.filter(
        Q(quality_score__isnull=False) | Q(model_score__isnull=False)
    ).values_list("user_id", "quality_score", "model_score")
    return TrustScores(
        by_queue={
            (queue, annotator): trust
            for queue, annotator, trust in states.values_list("queue_id", "annotator_id", "trust")
        },
        overall={user: gold if gold is not None else model for user, gold, model in profiles},
    )


def criterion_queues(*, spec: FilterSpec) -> dict[int, bool] | None:
    """For a named criterion: the queues that ask it -> whether it is their first (primary)
    one. None when the spec takes each queue's primary criterion."""
    if spec.criterion is None:
        return None
    queues = LabelingQueue.objects.filter(criteria__contains=[{"name": spec.criterion}])
    if spec.queues:
        queues = queues.filter(pk__in=spec.queues)
    return {
        pk: bool(criteria) and criteria[0].get("name") == spec.criterion
        for pk, criteria in queues.values_list("pk", "criteria")
    }


@dataclass(frozen=True)
class VoteRules:
    """What decides whether a judgment counts, read once per selection."""

    spec: FilterSpec
    criterion_queues: dict[int, bool] | None
    paused: frozenset[tuple[int, int]]
    trust: TrustScores

    def is_primary(self, queue_id: int) -> bool:
        """Whether the spec's criterion is this queue's primary one (the judgment's choice)."""
        return self.criterion_queues is None or self.criterion_queues.get(queue_id, False)


def vote_rules(*, spec: FilterSpec, needs_trust: bool) -> VoteRules:
    paused: frozenset[tuple[int, int]] = frozenset()
    if spec.exclude_paused:
        states = AnnotatorQueueState.objects.filter(status__in=AnnotatorQueueState.STOPPED)
        if spec.queues:
            states = states.filter(queue_id__in=spec.queues)
        paused = frozenset(states.values_list("queue_id", "annotator_id"))
    trust = TrustScores()
    if needs_trust or spec.annotators.mode == "quality":
        trust = trust_scores(queue_ids=tuple(q for q in spec.queues if isinstance(q, int)))
    return VoteRules(
        spec=spec, criterion_queues=criterion_queues(spec=spec), paused=paused, trust=trust
    )


def votes_by_pair(*, rules: VoteRules, pairs: dict[int, tuple[int, int]]) -> dict[int, list[Vote]]:
    """pair id -> its counted votes in judgment order; `pairs`: pair id -> (queue id, a id)."""
    spec = rules.spec
    judgments = Judgment.objects.filter(pair_id__in=list(pairs))
    fields: list[Any] = ["pair_id", "choice", "left_candidate_id", "annotator_id", "created_at"]
    if spec.criterion is None:
        judgments = judgments.filter(choice__in=spec.count_choices)
    else:
        primary = [pair for pair, (queue, _) in pairs.items() if rules.is_primary(queue)]
        judgments = judgments.annotate(
            answer=KeyTextTransform(spec.criterion, "criteria_choices")
        ).filter(Q(answer__isnull=False) | Q(choice="skip") | Q(pair_id__in=primary))
        fields.append("answer")
    if spec.judged_after:
        judgments = judgments.filter(created_at__gte=spec.judged_after)
    if spec.judged_before:
        judgments = judgments.filter(created_at__lt=spec.judged_before)
    if spec.annotators.mode == "list":
        judgments = judgments.filter(annotator_id__in=spec.annotators.ids)
    quality = spec.annotators.min_quality if spec.annotators.mode == "quality" else None
    votes: dict[int, list[Vote]] = {}
    for row in judgments.order_by("pair_id", "id").values_list(*fields):
        pair_id, choice, left_id, annotator_id, judged_at = row[:5]
        queue_id, a_id = pairs[pair_id]
        if (queue_id, annotator_id) in rules.paused:
            continue
        if quality is not None:
            trust = rules.trust.of(queue_id, annotator_id)
            if trust is None or trust < quality:
                continue
        answer = choice if choice == "skip" or rules.is_primary(queue_id) else row[5]
        if answer not in spec.count_choices:
            continue
        left_is_a = left_id == a_id
        if answer in ("left", "right"):
            kind = "a" if (answer == "left") == left_is_a else "b"
        else:
            kind = answer
        votes.setdefault(pair_id, []).append(Vote(kind, annotator_id, judged_at, left_is_a))
    return votes
