"""The individual judgments behind a frozen version's records, for the export's votes table.

`votes_add` is the one mapping of a record's counted votes to rows of the table: the freeze
calls it with the votes it aggregated (services/freezing.py), so a version frozen since then
carries its votes table and no export reads the judgments again. `version_vote_chunks` reads
them again for a version frozen before that (its first export stores the file).

A record keeps its vote counts, its annotators and its last counted judgment's time; the votes
themselves are read again here with the version's own vote rules (criterion, counted answers,
time range: `selectors/votes.py`), kept to the record's annotators and to judgments up to its
`judged_at`. Judgments are never edited and an annotator judges a pair once, so these are the
votes the record counted, even if trust scores or pauses changed since (those filters are
replaced by the record's own annotator list). Each chunk of records is read with pyarrow's JSON
reader (`canonical_parsed`), not a Python parse per line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from annotation.models import Pair
from training_bridge.datasets.aggregation.specs import AnnotatorFilter
from training_bridge.datasets.exporters.canonical_parsed import fields_parsed
from training_bridge.datasets.exporters.votes_table import VoteColumns
from training_bridge.datasets.selectors.datasets import version_canonical_chunks
from training_bridge.datasets.selectors.votes import Vote, vote_rules, votes_by_pair
from training_bridge.datasets.services.specs import dataset_specs_resolve
from training_bridge.models import DatasetVersion

CHUNK_RECORDS = 5_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def votes_add(
    out: VoteColumns,
    *,
    pair_id: int,
    split: str,
    candidates: tuple[int, int],
    votes: Iterable[Vote],
) -> None:
    """One record's counted votes as rows of the votes table (stored sides: `candidates` are
    the pair's candidate a and b ids)."""
    a, b = candidates
    for vote in votes:
        delta = vote.judged_at - _EPOCH
        out.add(
            pair_id=pair_id,
            split=split,
            annotator_id=vote.annotator,
            answer=vote.kind,
            candidate_id=a if vote.kind == "a" else b if vote.kind == "b" else None,
            left_is_a=vote.left_is_a,
            judged_at_ns=(delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000,
        )


def record_votes_add(out: VoteColumns, record: dict, votes: Iterable[Vote]) -> None:
    """A canonical record's counted votes (the freeze's path)."""
    first, second = record["candidates"]
    votes_add(
        out,
        pair_id=record["pair_id"],
        split=record["split"],
        candidates=(first["id"], second["id"]),
        votes=votes,
    )


def version_vote_chunks(*, version: DatasetVersion) -> Iterator[VoteColumns]:
    """Each record's counted judgments (stored sides), in canonical order, a chunk at a time."""
    spec = dataset_specs_resolve(
        filter_spec=version.filter_spec, split_spec=version.split_spec
    ).filter
    relaxed = dataclasses.replace(spec, annotators=AnnotatorFilter(), exclude_paused=False)
    rules = vote_rules(spec=relaxed, needs_trust=False)
    for lines in version_canonical_chunks(version_id=version.pk, chunk_size=CHUNK_RECORDS):
        fields = fields_parsed(lines)
        pair_ids = fields["pair_id"].to_pylist()
        splits = fields["split"].to_pylist()
        annotators = fields["annotator_ids"].to_pylist()
        judged = fields["judged_at"].to_pylist()
        sides = {
            pk: (queue, a, b)
            for pk, queue, a, b in Pair.objects.filter(pk__in=pair_ids).values_list(
                "pk", "queue_id", "candidate_a_id", "candidate_b_id"
            )
        }
        found = votes_by_pair(
            rules=rules, pairs={pk: (queue, a) for pk, (queue, a, _) in sides.items()}
        )
        out = VoteColumns()
        for pair_id, split, who, until in zip(pair_ids, splits, annotators, judged, strict=True):
            limit = datetime.fromisoformat(until.replace("Z", "+00:00"))
            counted = set(who)
            _, a, b = sides[pair_id]
            votes_add(
                out,
                pair_id=pair_id,
                split=split,
                candidates=(a, b),
                votes=(
                    vote
                    for vote in found.get(pair_id, ())
                    if vote.annotator in counted and vote.judged_at <= limit
                ),
            )
        yield out
