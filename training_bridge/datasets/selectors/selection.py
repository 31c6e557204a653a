"""What a filter spec selects: labelled pairs streamed as canonical records, in canonical order.

The stream walks the selected pairs ordered by (prompt, pair) with one server-side cursor and
loads judgments, candidates and prompts per chunk of pairs, so memory stays bounded however
many pairs there are. Records of one prompt are held back until the prompt is complete, which
is how each record knows `num_example_per_prompt`. `SelectionStats` counts what each filter
dropped, so an empty selection can say which key emptied it.

A label model (`dawid_skene`, `glad`, `bradley_terry`, `noisy_bt`) needs every vote before it
labels any pair: a first walk collects the selection's votes compactly (`VoteTable`), the model
is fitted once, then the records stream as above. Review-queue copies of disputed pairs are
never records. A pair whose answer is known for the primary criterion (settled by review, or a
gold pair's when gold is included) takes that answer with confidence 1, whatever the
aggregator; the agreement, confidence and ambiguity filters do not apply to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Q, QuerySet

from annotation.models import Pair
from config.errors import ValidationFailed
from generation_workers.models import Campaign, Candidate, Prompt
from generation_workers.selectors.campaigns import campaign_candidates_select
from training_bridge.datasets.aggregation.aggregators import aggregator_build
from training_bridge.datasets.aggregation.labels import (
    LABELS,
    Aggregator,
    PairVotes,
    aggregate_known,
)
from training_bridge.datasets.aggregation.records import (
    CandidateRow,
    PairRow,
    PromptRow,
    record_build,
)
from training_bridge.datasets.aggregation.specs import (
    KEEP_LABELS,
    FilterSpec,
    SpecInvalid,
    SplitSpec,
)
from training_bridge.datasets.aggregation.splits import split_for_group
from training_bridge.datasets.aggregation.votes import VoteTable
from training_bridge.datasets.selectors.votes import (
    Vote,
    VoteRules,
    criterion_queues,
    vote_rules,
    votes_by_pair,
)

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
    "gold_winner_id",
    "resolution",
    "settled_choice",
    "settled_winner_id",
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
    """How many pairs each stage saw and dropped (stages in the order they apply), and what the
    label model's fit reported."""

    pairs: int = 0
    dropped: dict[str, int] = field(
        default_factory=lambda: {
            "min_judgments": 0,
            "exclude_ambiguous": 0,
            "aggregator_options": 0,
            "keep_labels": 0,
            "min_agreement": 0,
            "min_confidence": 0,
            "counterfactual_filter": 0,
        }
    )
    records: int = 0
    fit: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"pairs_matched": self.pairs, "dropped": dict(self.dropped), "records": self.records}

    def empty_error(self, spec: FilterSpec) -> ValidationFailed:
        """The error for a selection without records, naming the key that emptied it."""
        if self.pairs == 0:
            named = [k for k in ("criterion", "queues", "campaigns") if getattr(spec, k)]
            return ValidationFailed(
                "the selection is empty: no pair matches the queues, campaigns, criterion, "
                "pair kinds and gold setting",
                field=f"filter_spec.{named[0]}" if named else "filter_spec.pair_kinds",
            )
        left = self.pairs
        reasons = {
            "min_judgments": f"have fewer than {spec.min_judgments} counted judgments "
            "(time range, annotators, paused annotators and count_choices included)",
            "exclude_ambiguous": "are ambiguous (split at their maximum votes)",
            "aggregator_options": f"have no label under {spec.aggregator} and its options "
            "(tie rule; a pairwise model labels only pairs with a left/right vote)",
            "keep_labels": f"have a label outside keep_labels {list(spec.keep_labels)}",
            "min_agreement": f"have an agreement below {spec.min_agreement}",
            "min_confidence": f"have a confidence below {spec.min_confidence}",
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
    pairs = Pair.objects.filter(kind__in=spec.pair_kinds, review_of__isnull=True)
    if spec.queues:
        pairs = pairs.filter(queue_id__in=spec.queues)
    asking = criterion_queues(spec=spec)
    if asking is not None:
        pairs = pairs.filter(queue_id__in=list(asking))
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


def _chunks(spec: FilterSpec) -> Iterator[list[Any]]:
    """The selected pairs in canonical order, CHUNK_PAIRS at a time."""
    rows = (
        selection_pairs(spec=spec)
        .order_by("prompt_id", "id")
        .values_list(*_PAIR_FIELDS, named=True)
        .iterator(chunk_size=CHUNK_PAIRS)
    )
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_PAIRS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _chunk_votes(rules: VoteRules, chunk: list[Any]) -> dict[int, list[Vote]]:
    return votes_by_pair(
        rules=rules, pairs={row.id: (row.queue_id, row.candidate_a_id) for row in chunk}
    )


def _side(row: Any, candidate_id: int) -> str:
    return "a" if candidate_id == row.candidate_a_id else "b"


def known_answer(row: Any, rules: VoteRules) -> tuple[str, bool] | None:
    """(label, settled) of a pair whose answer is known for the spec's criterion: the settled
    answer of its review, else a gold pair's answer. Both answer the primary criterion."""
    if not rules.is_primary(row.queue_id):
        return None
    if row.settled_choice:
        if row.settled_choice == "winner":
            if row.settled_winner_id is None:
                return None
            return _side(row, row.settled_winner_id), True
        return row.settled_choice, True
    if row.is_gold and row.gold_winner_id is not None:
        return _side(row, row.gold_winner_id), False
    return None


def selection_votes(*, spec: FilterSpec, rules: VoteRules) -> VoteTable:
    """Every counted vote of the selected pairs (the label models' input), chunk by chunk."""
    table = VoteTable()
    for chunk in _chunks(spec):
        votes = _chunk_votes(rules, chunk)
        for row in chunk:
            pair_votes = votes.get(row.id)
            if not pair_votes:
                continue
            known = known_answer(row, rules)
            table.pair_add(
                pair_id=row.id,
                prompt_id=row.prompt_id,
                candidate_a=row.candidate_a_id,
                candidate_b=row.candidate_b_id,
                known=known[0] if known and known[0] in LABELS else None,
            )
            for vote in pair_votes:
                table.vote_add(
                    pair_id=row.id,
                    annotator_id=vote.annotator,
                    vote=vote.kind,
                    left_is_a=vote.left_is_a,
                )
    return table


def selection_records(
    *,
    spec: FilterSpec,
    split: SplitSpec,
    stats: SelectionStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Canonical records of every labelled pair the specs keep, in canonical order."""
    for record, _ in selection_records_voted(spec=spec, split=split, stats=stats):
        yield record


def selection_records_voted(
    *,
    spec: FilterSpec,
    split: SplitSpec,
    stats: SelectionStats | None = None,
) -> Iterator[tuple[dict[str, Any], list[Vote]]]:
    """Each record with the votes it counted (judgment order): the freeze writes the version's
    per-judgment votes table from them, without reading the judgments again."""
    stats = stats if stats is not None else SelectionStats()
    aggregator = aggregator_build(spec.aggregator, spec.aggregator_options)
    rules = vote_rules(spec=spec, needs_trust=spec.aggregator == "trust_weighted")
    if aggregator.fitted:
        table = selection_votes(spec=spec, rules=rules)
        try:
            stats.fit = aggregator.fit(table)
        except SpecInvalid as exc:
            raise ValidationFailed(exc.detail, field=exc.field) from None
        del table
    held_out = held_out_groups(split=split)
    pending: list[tuple[dict[str, Any], list[Vote]]] = []
    for chunk in _chunks(spec):
        yield from _chunk_records(spec, split, held_out, rules, aggregator, chunk, pending, stats)
    yield from _flush(pending, stats)


def _flush(
    pending: list[tuple[dict[str, Any], list[Vote]]], stats: SelectionStats
) -> Iterator[tuple[dict[str, Any], list[Vote]]]:
    for record, votes in pending:
        record["num_example_per_prompt"] = len(pending)
        stats.records += 1
        yield record, votes
    pending.clear()


def _chunk_records(
    spec: FilterSpec,
    split: SplitSpec,
    held_out: frozenset[str],
    rules: VoteRules,
    aggregator: Aggregator,
    chunk: list[Any],
    pending: list[tuple[dict[str, Any], list[Vote]]],
    stats: SelectionStats,
) -> Iterator[tuple[dict[str, Any], list[Vote]]]:
    votes = _chunk_votes(rules, chunk)
    candidates = _candidate_rows(
        {c for row in chunk for c in (row.candidate_a_id, row.candidate_b_id)}
    )
    prompts = _prompt_rows({row.prompt_id for row in chunk})
    dropped = stats.dropped
    for row in chunk:
        if pending and pending[0][0]["prompt"]["id"] != row.prompt_id:
            yield from _flush(pending, stats)
        stats.pairs += 1
        pair_votes = votes.get(row.id, [])
        if len(pair_votes) < spec.min_judgments:
            dropped["min_judgments"] += 1
            continue
        known = known_answer(row, rules)
        if spec.exclude_ambiguous and row.resolution == "ambiguous" and known is None:
            dropped["exclude_ambiguous"] += 1
            continue
        annotators = tuple(vote.annotator for vote in pair_votes)
        counted = PairVotes(
            pair_id=row.id,
            votes=tuple(vote.kind for vote in pair_votes),
            annotators=annotators,
            trust={
                annotator: trust
                for annotator in annotators
                if (trust := rules.trust.of(row.queue_id, annotator)) is not None
            },
        )
        if known is not None:
            aggregate = aggregate_known(counted, label=known[0], settled=known[1])
        else:
            aggregate = aggregator.aggregate(counted)
        if aggregate.label is None:
            dropped["aggregator_options"] += 1
            continue
        label_kind = "winner" if aggregate.label in ("a", "b") else aggregate.label
        if label_kind not in spec.keep_labels:
            dropped["keep_labels"] += 1
            continue
        if known is None and aggregate.agreement < spec.min_agreement:
            dropped["min_agreement"] += 1
            continue
        if known is None and aggregate.confidence < spec.min_confidence:
            dropped["min_confidence"] += 1
            continue
        if spec.counterfactual_filter == "agree_with_intended" and row.kind == "counterfactual":
            if aggregate.label != _side(row, row.intended_winner_id):
                dropped["counterfactual_filter"] += 1
                continue
        prompt = prompts[row.prompt_id]
        pair = PairRow(
            id=row.id,
            kind=row.kind,
            queue_id=row.queue_id,
            is_gold=row.is_gold,
            prompt=prompt,
            candidate_a=candidates[row.candidate_a_id],
            candidate_b=candidates[row.candidate_b_id],
            intended_winner_id=row.intended_winner_id,
        )
        record = record_build(
            pair=pair,
            aggregate=aggregate,
            split=split_for_group(
                group_key=prompt.group_key, spec=split, held_out=prompt.group_key in held_out
            ),
            annotator_ids=list(annotators),
            judged_at=max(vote.judged_at for vote in pair_votes),
            num_example_per_prompt=0,
        )
        pending.append((record, pair_votes))


def _probe(spec: FilterSpec) -> FilterSpec:
    """A label model fits on the whole selection (minutes on millions of votes): a request
    checks the selection with the majority vote instead, up to the label-based filters, which
    the freeze applies (and a freeze they empty fails, naming the key)."""
    if not aggregator_build(spec.aggregator, spec.aggregator_options).fitted:
        return spec
    return replace(
        spec,
        aggregator="majority",
        aggregator_options={"tie_rule": "tie"},
        keep_labels=KEEP_LABELS,
        min_confidence=0.0,
        counterfactual_filter="none",
    )


def selection_first_record(*, spec: FilterSpec, split: SplitSpec) -> dict[str, Any]:
    """The first record the specs select, or the ValidationFailed that says why there is none.

    Stops at the first prompt with a kept pair, so a non-empty selection answers quickly.
    """
    stats = SelectionStats()
    probe = _probe(spec)
    for record in selection_records(spec=probe, split=split, stats=stats):
        return record
    raise stats.empty_error(probe)
