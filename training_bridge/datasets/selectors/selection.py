"""What a filter spec selects: labelled pairs streamed as canonical records, in canonical order.

The stream walks the selected pairs ordered by (prompt, pair) with one server-side cursor and
loads judgments, candidates and prompts per chunk of pairs, so memory stays bounded however
many pairs there are. Records of one prompt are held back until the prompt is complete, which
is how each record knows `num_example_per_prompt`. `SelectionStats` counts what each filter
dropped, so an empty selection can say which key emptied it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from annotation.models import Judgment, Pair
from config.errors import ValidationFailed
from generation_workers.models import Campaign, Candidate, Prompt
from generation_workers.selectors.campaigns import campaign_candidates_select
from training_bridge.datasets.aggregation.labels import aggregator_build
from training_bridge.datasets.aggregation.records import (
    CandidateRow,
    PairRow,
    PromptRow,
    record_build,
)
from training_bridge.datasets.aggregation.specs import FilterSpec, SplitSpec
from training_bridge.datasets.aggregation.splits import split_for_group

CHUNK_PAIRS = 2000

_PAIR_FIELDS = (
    "id",
    "kind",
    "queue_id",
    "is_gold",
    "prompt_id",
    "candidate_a_id",
    "candidate_b_id",
    "intended_winner_id",
)
_CANDIDATE_FIELDS = (
    "id",
    "storage_key",
    "content_sha256",
    "config__name",
    "seed",
    "prompt_id",
    "prompt__text",
    "prompt__perturbation_type",
    "prompt__num_perturbations",
    "campaign_id",
    "width",
    "height",
)
_PROMPT_FIELDS = (
    "id",
    "text",
    "structure",
    "group_key",
    "relation_keys",
    "object_keys",
    "perturbation_type",
    "num_perturbations",
    "parent_id",
    "tier",
)


@dataclass
class SelectionStats:
    """How many pairs each stage saw and dropped (stages in the order they apply)."""

    pairs: int = 0
    dropped: dict[str, int] = field(
        default_factory=lambda: {
            "min_judgments": 0,
            "aggregator_options": 0,
            "keep_labels": 0,
            "min_agreement": 0,
            "counterfactual_filter": 0,
        }
    )
    records: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"pairs_matched": self.pairs, "dropped": dict(self.dropped), "records": self.records}

    def empty_error(self, spec: FilterSpec) -> ValidationFailed:
        """The error for a selection without records, naming the key that emptied it."""
        if self.pairs == 0:
            named = [k for k in ("queues", "campaigns") if getattr(spec, k)]
            return ValidationFailed(
                "the selection is empty: no pair matches the queues, campaigns, pair kinds "
                "and gold setting",
                field=f"filter_spec.{named[0]}" if named else "filter_spec.pair_kinds",
            )
        left = self.pairs
        reasons = {
            "min_judgments": f"have fewer than {spec.min_judgments} counted judgments "
            "(time range, annotators and count_choices included)",
            "aggregator_options": "have no label under the aggregator's tie rule",
            "keep_labels": f"have a label outside keep_labels {list(spec.keep_labels)}",
            "min_agreement": f"have an agreement below {spec.min_agreement}",
            "counterfactual_filter": "disagree with their intended winner",
        }
        for stage, dropped in self.dropped.items():
            if dropped and dropped == left:
                return ValidationFailed(
                    f"the selection is empty: {self.pairs} pairs match, and the last {left} "
                    f"{reasons[stage]}",
                    field=f"filter_spec.{stage}",
                )
            left -= dropped
        return ValidationFailed("the selection is empty", field="filter_spec")


def selection_pairs(*, spec: FilterSpec) -> QuerySet[Pair]:
    """The pairs the spec's pair-level filters keep (judgment-level filters apply later)."""
    pairs = Pair.objects.filter(kind__in=spec.pair_kinds)
    if spec.queues:
        pairs = pairs.filter(queue_id__in=spec.queues)
    if spec.campaigns:
        # a campaign's candidates include the images of its keys an earlier campaign made
        of_campaigns = Q(pk__in=[])
        for campaign in Campaign.objects.filter(pk__in=spec.campaigns):
            candidates = campaign_candidates_select(campaign=campaign).values("id")
            of_campaigns |= Q(candidate_a_id__in=candidates) | Q(candidate_b_id__in=candidates)
        pairs = pairs.filter(of_campaigns)
    if not spec.include_gold:
        pairs = pairs.filter(is_gold=False)
    return pairs


def _judgments(spec: FilterSpec, pair_ids: list[int]) -> QuerySet[Judgment]:
    judgments = Judgment.objects.filter(pair_id__in=pair_ids, choice__in=spec.count_choices)
    if spec.judged_after:
        judgments = judgments.filter(created_at__gte=spec.judged_after)
    if spec.judged_before:
        judgments = judgments.filter(created_at__lt=spec.judged_before)
    if spec.annotators.mode == "list":
        judgments = judgments.filter(annotator_id__in=spec.annotators.ids)
    elif spec.annotators.mode == "quality":
        judgments = judgments.filter(
            annotator__annotator_profile__quality_score__gte=spec.annotators.min_quality
        )
    return judgments


def held_out_groups(*, split: SplitSpec) -> frozenset[str]:
    """Group keys of which any prompt mentions a held-out object or relation."""
    if not split.held_out_objects and not split.held_out_relations:
        return frozenset()
    condition = Q()
    for key in split.held_out_objects:
        condition |= Q(object_keys__contains=f"|{key}|")
    for key in split.held_out_relations:
        condition |= Q(relation_keys__contains=f"|{key}|")
    return frozenset(
        Prompt.objects.filter(condition).values_list("group_key", flat=True).distinct()
    )


def _candidate_rows(ids: set[int]) -> dict[int, CandidateRow]:
    rows = Candidate.objects.filter(id__in=ids).values_list(*_CANDIDATE_FIELDS)
    return {
        row[0]: CandidateRow(
            id=row[0],
            key=row[1],
            sha256=row[2],
            model=row[3],
            seed=row[4],
            prompt_id=row[5],
            prompt_text=row[6],
            perturbation_type=row[7],
            num_perturbations=row[8],
            campaign_id=row[9],
            width=row[10],
            height=row[11],
        )
        for row in rows
    }


def _prompt_rows(ids: set[int]) -> dict[int, PromptRow]:
    return {
        row["id"]: PromptRow(**row)
        for row in Prompt.objects.filter(id__in=ids).values(*_PROMPT_FIELDS)
    }


def _votes_by_pair(spec: FilterSpec, pairs: list[tuple]) -> dict[int, list[tuple[str, int, Any]]]:
    """pair id -> [(vote, annotator id, judged at)], votes as a / b / tie / both_wrong / skip."""
    candidate_a = {row[0]: row[5] for row in pairs}
    votes: dict[int, list[tuple[str, int, Any]]] = {}
    rows = _judgments(spec, list(candidate_a)).values_list(
        "pair_id", "choice", "winner_id", "annotator_id", "created_at"
    )
    for pair_id, choice, winner_id, annotator_id, created_at in rows.order_by("pair_id", "id"):
        if choice in ("left", "right"):
            vote = "a" if winner_id == candidate_a[pair_id] else "b"
        else:
            vote = choice
        votes.setdefault(pair_id, []).append((vote, annotator_id, created_at))
    return votes


def selection_records(
    *, spec: FilterSpec, split: SplitSpec, stats: SelectionStats | None = None
) -> Iterator[dict[str, Any]]:
    """Canonical records of every labelled pair the specs keep, in canonical order."""
    stats = stats if stats is not None else SelectionStats()
    held_out = held_out_groups(split=split)
    pairs = (
        selection_pairs(spec=spec)
        .order_by("prompt_id", "id")
        .values_list(*_PAIR_FIELDS)
        .iterator(chunk_size=CHUNK_PAIRS)
    )
    pending: list[dict[str, Any]] = []
    chunk: list[tuple] = []
    for row in pairs:
        chunk.append(row)
        if len(chunk) >= CHUNK_PAIRS:
            yield from _chunk_records(spec, split, held_out, chunk, pending, stats)
            chunk = []
    if chunk:
        yield from _chunk_records(spec, split, held_out, chunk, pending, stats)
    yield from _flush(pending, stats)


def _flush(pending: list[dict[str, Any]], stats: SelectionStats) -> Iterator[dict[str, Any]]:
    for record in pending:
        record["num_example_per_prompt"] = len(pending)
        stats.records += 1
        yield record
    pending.clear()


def _chunk_records(
    spec: FilterSpec,
    split: SplitSpec,
    held_out: frozenset[str],
    chunk: list[tuple],
    pending: list[dict[str, Any]],
    stats: SelectionStats,
) -> Iterator[dict[str, Any]]:
    aggregator = aggregator_build(spec.aggregator, spec.aggregator_options)
    votes = _votes_by_pair(spec, chunk)
    candidates = _candidate_rows({c for row in chunk for c in (row[5], row[6])})
    prompts = _prompt_rows({row[4] for row in chunk})
    for pair_id, kind, queue_id, is_gold, prompt_id, a_id, b_id, intended_id in chunk:
        if pending and pending[0]["prompt"]["id"] != prompt_id:
            yield from _flush(pending, stats)
        stats.pairs += 1
        pair_votes = votes.get(pair_id, [])
        if len(pair_votes) < spec.min_judgments:
            stats.dropped["min_judgments"] += 1
            continue
        aggregate = aggregator.aggregate(vote for vote, _, _ in pair_votes)
        if aggregate.label is None:
            stats.dropped["aggregator_options"] += 1
            continue
        label_kind = "winner" if aggregate.label in ("a", "b") else aggregate.label
        if label_kind not in spec.keep_labels:
            stats.dropped["keep_labels"] += 1
            continue
        if aggregate.agreement < spec.min_agreement:
            stats.dropped["min_agreement"] += 1
            continue
        if spec.counterfactual_filter == "agree_with_intended" and kind == "counterfactual":
            intended = "a" if intended_id == a_id else "b"
            if aggregate.label != intended:
                stats.dropped["counterfactual_filter"] += 1
                continue
        prompt = prompts[prompt_id]
        pair = PairRow(
            id=pair_id,
            kind=kind,
            queue_id=queue_id,
            is_gold=is_gold,
            prompt=prompt,
            candidate_a=candidates[a_id],
            candidate_b=candidates[b_id],
            intended_winner_id=intended_id,
        )
        pending.append(
            record_build(
                pair=pair,
                aggregate=aggregate,
                split=split_for_group(
                    group_key=prompt.group_key, spec=split, held_out=prompt.group_key in held_out
                ),
                annotator_ids=[annotator for _, annotator, _ in pair_votes],
                judged_at=max(at for _, _, at in pair_votes),
                num_example_per_prompt=0,
            )
        )


def selection_first_record(*, spec: FilterSpec, split: SplitSpec) -> dict[str, Any]:
    """The first record the specs select, or the ValidationFailed that says why there is none.

    Stops at the first prompt with a kept pair, so a non-empty selection answers quickly.
    """
    stats = SelectionStats()
    for record in selection_records(spec=spec, split=split, stats=stats):
        return record
    raise stats.empty_error(spec)
