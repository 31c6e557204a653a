"""The individual judgments behind a frozen version's records, for the export's votes table.

A record keeps its vote counts, its annotators and its last counted judgment's time; the votes
themselves are read again here with the version's own vote rules (criterion, counted answers,
time range: `selectors/votes.py`), kept to the record's annotators and to judgments up to its
`judged_at`. Judgments are never edited and an annotator judges a pair once, so these are the
votes the record counted, even if trust scores or pauses changed since (those filters are
replaced by the record's own annotator list).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime

from training_bridge.datasets.aggregation.specs import AnnotatorFilter
from training_bridge.datasets.exporters.votes_table import VoteRow
from training_bridge.datasets.selectors.datasets import version_canonical_chunks
from training_bridge.datasets.selectors.votes import vote_rules, votes_by_pair
from training_bridge.datasets.services.specs import dataset_specs_resolve
from training_bridge.models import DatasetVersion

CHUNK_RECORDS = 2_000


def version_vote_chunks(*, version: DatasetVersion) -> Iterator[list[VoteRow]]:
    """Each record's counted judgments, in canonical order, a chunk of records at a time."""
    spec = dataset_specs_resolve(
        filter_spec=version.filter_spec, split_spec=version.split_spec
    ).filter
    relaxed = dataclasses.replace(spec, annotators=AnnotatorFilter(), exclude_paused=False)
    rules = vote_rules(spec=relaxed, needs_trust=False)
    for lines in version_canonical_chunks(version_id=version.pk, chunk_size=CHUNK_RECORDS):
        records = [json.loads(line) for line in lines]
        found = votes_by_pair(
            rules=rules,
            pairs={r["pair_id"]: (r["queue_id"], r["candidates"][0]["id"]) for r in records},
        )
        rows: list[VoteRow] = []
        for record in records:
            annotators = set(record["annotator_ids"])
            until = datetime.fromisoformat(record["judged_at"].replace("Z", "+00:00"))
            first, second = record["candidates"]
            for vote in found.get(record["pair_id"], []):
                if vote.annotator in annotators and vote.judged_at <= until:
                    rows.append(
                        VoteRow(
                            pair_id=record["pair_id"],
                            annotator_id=vote.annotator,
                            answer=vote.kind,
                            left_is_a=vote.left_is_a,
                            judged_at=vote.judged_at,
                            candidate_a_id=first["id"],
                            candidate_b_id=second["id"],
                            split=record["split"],
                        )
                    )
        yield rows
