"""Reads of quality control for leads (issue 16): how each annotator answers, how far annotators
agree, and which pairs need a lead's eye. The maths is annotation/stats.py; here are the queries.

Bounded on a big queue: every figure is aggregated in PostgreSQL (one row per annotator, or one
row per distinct vote pattern and group for the agreement measures) and every list of pairs is
capped or paged. Gold pairs are left out of agreement (their answers score annotators instead);
skips are no vote anywhere.

Vote categories on a pair: its first candidate (a), its second (b), tie, both wrong. Pairs are
stored with a < b, so for same-prompt pairs a and b are arbitrary but fixed names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Max, Q, QuerySet
from django.utils import timezone

from annotation.models import AnnotatorProfile, AnnotatorQueueState, Judgment, LabelingQueue, Pair
from annotation.stats import (
    binomial_test_two_sided,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    posterior_accuracy,
    vote_entropy,
    wilson_interval,
)
from config.errors import NotFound, ValidationFailed

# An annotator is flagged when this share of their timed answers beat the queue's speed floor,
# or when their left-pick rate's test against 0.5 falls below this p-value.
FAST_SHARE_FLAG = 0.2
POSITION_BIAS_P = 0.01
TREND_DAYS = 30
ANNOTATORS_CAP = 1000  # rows of one queue's summary; the rest are counted
PAIRS_SHOWN = 20  # of each list on the dashboard; the API pages through all
VOTES_CAP = 500  # on a pair's drill-down (a gold pair may have one per annotator)
PAIR_STATES = ("ambiguous", "disputed")
CATEGORIES = ("a", "b", "tie", "both_wrong")


# --- shapes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    hits: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.trials if self.trials else None

    @property
    def low(self) -> float | None:
        """The Wilson 95% interval's bounds; None before any trial."""
        return wilson_interval(self.hits, self.trials)[0] if self.trials else None

    @property
    def high(self) -> float | None:
        return wilson_interval(self.hits, self.trials)[1] if self.trials else None


@dataclass(frozen=True)
class AnnotatorQuality:
    """One annotator in one queue (or in every queue: `queue_id` None), or everyone together
    (`annotator_id` None)."""

    annotator_id: int | None
    username: str
    answers: int  # skips included
    gold: Proportion  # gold answers (no skips) that picked the gold winner
    peers: Proportion  # non-skip answers on pairs with >= 2 other votes that match their majority
    left: Proportion  # left picks among left/right answers
    left_p_value: float  # exact two-sided binomial test against 0.5
    ties: int
    both_wrong: int
    skips: int
    median_seconds: float | None  # of timed non-skip answers
    fast: Proportion  # timed non-skip answers faster than the queue's speed floor
    last_at: datetime | None
    status: str  # AnnotatorQueueState's ("active" when the annotator has no state row yet)
    reason: str
    changed_at: datetime | None
    trust: float | None

    def share(self, count: int) -> float | None:
        return count / self.answers if self.answers else None

    @property
    def tie_rate(self) -> float | None:
        return self.share(self.ties)

    @property
    def both_wrong_rate(self) -> float | None:
        return self.share(self.both_wrong)

    @property
    def skip_rate(self) -> float | None:
        return self.share(self.skips)

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.fast.trials and self.fast.hits / self.fast.trials >= FAST_SHARE_FLAG:
            flags.append("fast")
        if self.left.trials and self.left_p_value < POSITION_BIAS_P:
            flags.append("position_bias")
        return flags

    @property
    def paused(self) -> bool:
        return self.status in AnnotatorQueueState.STOPPED


@dataclass(frozen=True)
class Agreement:
    """Agreement over the pairs of one group (a relation, a generator config, a pair kind, a
    day) with at least two votes; gold pairs left out."""

    key: str
    units: int  # pairs with >= 2 votes
    votes: int
    alpha: float | None  # Krippendorff's alpha, nominal
    kappa: float | None  # Fleiss' kappa, only when every pair has the same number of votes
    mean_entropy: float | None  # bits; 0 = every pair unanimous, 2 = four-way even split


@dataclass(frozen=True)
class QueueQuality:
    queue: LabelingQueue
    everyone: AnnotatorQuality
    annotators: list[AnnotatorQuality]  # most answers first, up to ANNOTATORS_CAP
    annotators_total: int
    agreement: Agreement
    by_kind: list[Agreement]
    by_relation: list[Agreement]
    by_config: list[Agreement]
    trend: list[Agreement]  # key: the UTC day of the pairs' last vote, the last TREND_DAYS
    ambiguous: int
    disputed: int
    in_review: int
    settled: int

    @property
    def paused(self) -> list[AnnotatorQuality]:
        return [a for a in self.annotators if a.paused]


@dataclass(frozen=True)
class Vote:
    annotator_id: int
    username: str
    choice: str
    category: str | None  # a, b, tie, both_wrong; None for a skip
    shown_left: str  # which candidate was on the left: a or b
    duration_ms: int | None
    reason_tags: list
    criteria_choices: dict
    created_at: datetime


@dataclass(frozen=True)
class PairDetail:
    pair: Pair
    counts: dict[str, int]  # per category, and skip
    entropy: float
    votes: list[Vote]  # oldest first, up to VOTES_CAP
    votes_total: int
    reviews: list[Pair] = field(default_factory=list)  # its copies in review queues


# --- per annotator ------------------------------------------------------------------------------


class _Median(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


_ANSWERED = ~Q(choice=Judgment.Choice.SKIP)
_TIMED = _ANSWERED & Q(duration_ms__isnull=False)
_COUNTS = {
    "answers": Count("id"),
    "skips": Count("id", filter=Q(choice=Judgment.Choice.SKIP)),
    "ties": Count("id", filter=Q(choice=Judgment.Choice.TIE)),
    "both_wrong": Count("id", filter=Q(choice=Judgment.Choice.BOTH_WRONG)),
    "lefts": Count("id", filter=Q(choice=Judgment.Choice.LEFT)),
    "sided": Count("id", filter=Q(choice__in=[Judgment.Choice.LEFT, Judgment.Choice.RIGHT])),
    "gold_answers": Count("id", filter=Q(pair__is_gold=True) & _ANSWERED),
    "gold_correct": Count("id", filter=Q(pair__is_gold=True, winner=F("pair__gold_winner"))),
    "timed": Count("id", filter=_TIMED),
    "fast": Count("id", filter=_TIMED & Q(duration_ms__lt=F("pair__queue__speed_floor_ms"))),
    "median_ms": _Median("duration_ms", filter=_ANSWERED),
    "last_at": Max("created_at"),
}

_J = Judgment._meta.db_table
_P = Pair._meta.db_table
# Each non-skip vote on a non-gold pair as a category number (0 a, 1 b, 2 tie, 3 both wrong).
_VOTES_CTE = f"""
votes AS (
    SELECT j.pair_id, j.annotator_id,
           CASE WHEN j.winner_id = p.candidate_a_id THEN 0
                WHEN j.winner_id = p.candidate_b_id THEN 1
                WHEN j.choice = 'tie' THEN 2 ELSE 3 END AS v
    FROM {_J} j JOIN {_P} p ON p.id = j.pair_id
    WHERE NOT p.is_gold AND j.choice <> 'skip' AND {{pairs}}
)"""
# Leave-one-out: on each pair with >= 2 other votes, the others' counts per category; a vote
# is scored when the others have one most common answer, and agrees when it is that answer.
_PEERS_SQL = f"""
WITH {_VOTES_CTE},
counts AS (
    SELECT pair_id, count(*) FILTER (WHERE v = 0) AS c0, count(*) FILTER (WHERE v = 1) AS c1,
           count(*) FILTER (WHERE v = 2) AS c2, count(*) FILTER (WHERE v = 3) AS c3
    FROM votes GROUP BY pair_id HAVING count(*) >= 3
),
others AS (
    SELECT v.annotator_id, v.v,
           c.c0 - (v.v = 0)::int AS o0, c.c1 - (v.v = 1)::int AS o1,
           c.c2 - (v.v = 2)::int AS o2, c.c3 - (v.v = 3)::int AS o3
    FROM votes v JOIN counts c USING (pair_id)
    WHERE {{voters}}
),
peaks AS (
    SELECT annotator_id, v, o0, o1, o2, o3, GREATEST(o0, o1, o2, o3) AS top FROM others
)
SELECT annotator_id,
       count(*) FILTER (WHERE single) AS scored,
       count(*) FILTER (WHERE single AND (ARRAY[o0, o1, o2, o3])[v + 1] = top) AS agreed
FROM (
    SELECT *, ((o0 = top)::int + (o1 = top)::int + (o2 = top)::int + (o3 = top)::int) = 1
              AS single
    FROM peaks
) scored
GROUP BY annotator_id
"""


def _peers(*, queue_id: int | None, annotator_ids: list[int] | None) -> dict[int, Proportion]:
    params: dict = {}
    pairs, voters = "TRUE", "TRUE"
    if queue_id is not None:
        pairs = "p.queue_id = %(queue)s"
        params["queue"] = queue_id
    if annotator_ids is not None:
        # the pairs these annotators answered, with everyone's votes on them
        pairs += f" AND p.id IN (SELECT pair_id FROM {_J} WHERE annotator_id = ANY(%(ids)s))"
        voters = "v.annotator_id = ANY(%(ids)s)"
        params["ids"] = list(annotator_ids)
    with connection.cursor() as cursor:
        cursor.execute(_PEERS_SQL.format(pairs=pairs, voters=voters), params)
        return {row[0]: Proportion(hits=row[2], trials=row[1]) for row in cursor.fetchall()}


def _quality(
    row: dict,
    *,
    annotator_id: int | None,
    username: str,
    peers: Proportion,
    state: AnnotatorQueueState | None,
    trust: float | None,
) -> AnnotatorQuality:
    left = Proportion(hits=row["lefts"], trials=row["sided"])
    return AnnotatorQuality(
        annotator_id=annotator_id,
        username=username,
        answers=row["answers"],
        gold=Proportion(hits=row["gold_correct"], trials=row["gold_answers"]),
        peers=peers,
        left=left,
        left_p_value=binomial_test_two_sided(left.hits, left.trials),
        ties=row["ties"],
        both_wrong=row["both_wrong"],
        skips=row["skips"],
        median_seconds=row["median_ms"] / 1000 if row["median_ms"] is not None else None,
        fast=Proportion(hits=row["fast"], trials=row["timed"]),
        last_at=row["last_at"],
        status=state.status if state else AnnotatorQueueState.Status.ACTIVE,
        reason=state.reason if state else "",
        changed_at=state.changed_at if state else None,
        trust=trust,
    )


_NO_ANSWERS = dict.fromkeys(_COUNTS, 0) | {"median_ms": None, "last_at": None}


def annotators_quality(
    *, queue_id: int | None, annotator_ids: list[int] | None = None
) -> list[AnnotatorQuality]:
    """Each annotator's figures in one queue, or over every queue (`queue_id` None, where the
    speed floor is each answer's queue's). In a queue: everyone who answered or has a state
    row there, most answers first, up to ANNOTATORS_CAP. `annotator_ids`: only these."""
    judgments = Judgment.objects.all()
    states = AnnotatorQueueState.objects.none()
    if queue_id is not None:
        judgments = judgments.filter(pair__queue_id=queue_id)
        states = AnnotatorQueueState.objects.filter(queue_id=queue_id)
    if annotator_ids is not None:
        judgments = judgments.filter(annotator_id__in=annotator_ids)
        states = states.filter(annotator_id__in=annotator_ids)
    rows = list(
        judgments.values("annotator_id")
        .annotate(**_COUNTS)
        .order_by("-answers", "annotator_id")[:ANNOTATORS_CAP]
    )
    ids = [r["annotator_id"] for r in rows]
    by_state = {s.annotator_id: s for s in states.filter(annotator_id__in=ids)}
    if len(rows) < ANNOTATORS_CAP:  # state rows without an answer here (a lead paused them)
        for state in states.exclude(annotator_id__in=ids).order_by("annotator_id")[
            : ANNOTATORS_CAP - len(rows)
        ]:
            by_state[state.annotator_id] = state
            rows.append(_NO_ANSWERS | {"annotator_id": state.annotator_id})
            ids.append(state.annotator_id)
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    peers = _peers(queue_id=queue_id, annotator_ids=ids if annotator_ids is not None else None)
    if queue_id is None:  # overall trust: the gold posterior over every queue
        trusts = {
            r["annotator_id"]: posterior_accuracy(r["gold_correct"], r["gold_answers"])
            for r in rows
        }
    else:
        trusts = {i: s.trust for i, s in by_state.items()}
    empty = Proportion(hits=0, trials=0)
    return [
        _quality(
            row,
            annotator_id=row["annotator_id"],
            username=names.get(row["annotator_id"], ""),
            peers=peers.get(row["annotator_id"], empty),
            state=by_state.get(row["annotator_id"]),
            trust=trusts.get(row["annotator_id"]),
        )
        for row in rows
        if row["annotator_id"] in names
    ]


def annotators_overall_page(*, offset: int, limit: int) -> tuple[int, list[AnnotatorQuality]]:
    """Annotators (accounts with an annotator profile) by username, each over every queue."""
    profiles = AnnotatorProfile.objects.order_by("user__username", "user_id")
    page = list(profiles.values_list("user_id", flat=True)[offset : offset + limit])
    rows = {a.annotator_id: a for a in annotators_quality(queue_id=None, annotator_ids=page)}
    names = dict(get_user_model().objects.filter(pk__in=page).values_list("pk", "username"))
    return profiles.count(), [rows.get(i) or _idle(i, names[i]) for i in page]


def _idle(annotator_id: int, username: str) -> AnnotatorQuality:
    empty = Proportion(hits=0, trials=0)
    return _quality(
        _NO_ANSWERS, annotator_id=annotator_id, username=username, peers=empty, state=None,
        trust=posterior_accuracy(0, 0),
    )  # fmt: skip


# --- agreement ----------------------------------------------------------------------------------

_PROMPT = "generation_workers_prompt"
_CANDIDATE = "generation_workers_candidate"
_CONFIG = "generation_workers_generatorconfig"
# One row per group and distinct vote pattern (na, nb, nt, nw) with its number of pairs: the
# measures need only that histogram, whose size is bounded by the overlap, not by the queue.
_AGREEMENT_SQL = f"""
WITH units AS (
    SELECT p.id, p.kind, p.prompt_id, p.candidate_a_id, p.candidate_b_id,
           count(*) FILTER (WHERE j.winner_id = p.candidate_a_id) AS na,
           count(*) FILTER (WHERE j.winner_id = p.candidate_b_id) AS nb,
           count(*) FILTER (WHERE j.choice = 'tie') AS nt,
           count(*) FILTER (WHERE j.choice = 'both_wrong') AS nw,
           max(j.created_at) AS last_at
    FROM {_P} p JOIN {_J} j ON j.pair_id = p.id
    WHERE p.queue_id = %(queue)s AND NOT p.is_gold AND j.choice <> 'skip'
    GROUP BY p.id
    HAVING count(*) >= 2
)
SELECT 'all', '', na, nb, nt, nw, count(*) FROM units GROUP BY 2, 3, 4, 5, 6
UNION ALL
SELECT 'kind', kind, na, nb, nt, nw, count(*) FROM units GROUP BY 2, 3, 4, 5, 6
UNION ALL
SELECT 'relation', r.name, na, nb, nt, nw, count(*)
FROM units u JOIN {_PROMPT} pr ON pr.id = u.prompt_id
CROSS JOIN LATERAL unnest(string_to_array(pr.relation_keys, '|')) AS r(name)
WHERE r.name <> '' GROUP BY 2, 3, 4, 5, 6
UNION ALL
SELECT 'config', g.name, na, nb, nt, nw, count(*)
FROM units u
JOIN {_CANDIDATE} ca ON ca.id = u.candidate_a_id
JOIN {_CANDIDATE} cb ON cb.id = u.candidate_b_id
CROSS JOIN LATERAL (
    SELECT DISTINCT c FROM unnest(ARRAY[ca.config_id, cb.config_id]) AS c
) AS cfg(config_id)
JOIN {_CONFIG} g ON g.id = cfg.config_id
GROUP BY 2, 3, 4, 5, 6
UNION ALL
SELECT 'day', to_char((last_at AT TIME ZONE %(tz)s)::date, 'YYYY-MM-DD'), na, nb, nt, nw,
       count(*)
FROM units WHERE last_at >= %(since)s GROUP BY 2, 3, 4, 5, 6
"""


def _agreement(key: str, patterns: list[tuple[tuple[int, ...], int]]) -> Agreement:
    units = sum(n for _, n in patterns)
    sizes = {sum(counts) for counts, _ in patterns}
    return Agreement(
        key=key,
        units=units,
        votes=sum(sum(counts) * n for counts, n in patterns),
        alpha=krippendorff_alpha_nominal(patterns),
        kappa=fleiss_kappa(patterns) if len(sizes) == 1 else None,
        mean_entropy=(
            sum(vote_entropy(counts) * n for counts, n in patterns) / units if units else None
        ),
    )


def queue_agreement(
    *, queue_id: int, now: datetime | None = None
) -> tuple[Agreement, dict[str, list[Agreement]]]:
    """The queue's agreement overall and per pair kind, relation, generator config (a pair
    counts for the config of each of its candidates) and day (the trend)."""
    now = now or timezone.now()
    since = now - timedelta(days=TREND_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            _AGREEMENT_SQL, {"queue": queue_id, "tz": settings.TIME_ZONE, "since": since}
        )
        rows = cursor.fetchall()
    groups: dict[tuple[str, str], list[tuple[tuple[int, ...], int]]] = {}
    for grouping, key, na, nb, nt, nw, n in rows:
        groups.setdefault((grouping, key), []).append(((na, nb, nt, nw), n))
    overall = _agreement("all", groups.pop(("all", ""), []))
    split: dict[str, list[Agreement]] = {"kind": [], "relation": [], "config": [], "day": []}
    for (grouping, key), patterns in sorted(groups.items()):
        split[grouping].append(_agreement(key, patterns))
    return overall, split


def queue_quality(*, queue_id: int, now: datetime | None = None) -> QueueQuality:
    """A queue's quality summary: every annotator, agreement, pairs needing a lead's eye."""
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    annotators = annotators_quality(queue_id=queue_id)
    judgments = Judgment.objects.filter(pair__queue_id=queue_id)
    everyone_peers = [a.peers for a in annotators]
    everyone = _quality(
        judgments.aggregate(**_COUNTS),
        annotator_id=None,
        username="everyone",
        peers=Proportion(
            hits=sum(p.hits for p in everyone_peers), trials=sum(p.trials for p in everyone_peers)
        ),
        state=None,
        trust=None,
    )
    overall, split = queue_agreement(queue_id=queue_id, now=now)
    reviews = (
        Pair.objects.filter(queue_id=queue_id)
        .exclude(review="")
        .aggregate(
            pending=Count("id", filter=Q(review=Pair.Review.PENDING)),
            settled=Count("id", filter=Q(review=Pair.Review.SETTLED)),
        )
    )
    return QueueQuality(
        queue=queue,
        everyone=everyone,
        annotators=annotators,
        annotators_total=(
            judgments.values("annotator_id").distinct().count()
            if len(annotators) >= ANNOTATORS_CAP
            else len(annotators)
        ),
        agreement=overall,
        by_kind=split["kind"],
        by_relation=split["relation"],
        by_config=split["config"],
        trend=split["day"],
        ambiguous=pairs_in_state(queue_id=queue_id, state="ambiguous").count(),
        disputed=pairs_in_state(queue_id=queue_id, state="disputed").count(),
        in_review=reviews["pending"],
        settled=reviews["settled"],
    )


# --- pairs that need a lead's eye ------------------------------------------------------------

_VOTE_COUNTS = {
    "votes_a": Count("judgments", filter=Q(judgments__winner=F("candidate_a"))),
    "votes_b": Count("judgments", filter=Q(judgments__winner=F("candidate_b"))),
    "votes_tie": Count("judgments", filter=Q(judgments__choice=Judgment.Choice.TIE)),
    "votes_both_wrong": Count("judgments", filter=Q(judgments__choice=Judgment.Choice.BOTH_WRONG)),
    "skips": Count("judgments", filter=Q(judgments__choice=Judgment.Choice.SKIP)),
}


def pairs_in_state(*, queue_id: int, state: str) -> QuerySet[Pair]:
    """A queue's pairs in one state, newest first, each with its vote counts (votes_a, votes_b,
    votes_tie, votes_both_wrong, skips): `ambiguous` (still split at the maximum votes) or
    `disputed` (in review or settled there, or settled with a clear human majority against
    the intended winner: `Pair.disputed`, services/quality.py). Gold pairs are never listed.
    Page it."""
    if state not in PAIR_STATES:
        raise ValidationFailed(f"state must be one of {', '.join(PAIR_STATES)}", field="state")
    pairs = (
        Pair.objects.filter(queue_id=queue_id, is_gold=False)
        .select_related("prompt")
        .annotate(**_VOTE_COUNTS)
        .order_by("-id")
    )
    if state == "ambiguous":
        return pairs.filter(resolution=Pair.Resolution.AMBIGUOUS)
    return pairs.filter(Q(review__in=[Pair.Review.PENDING, Pair.Review.SETTLED]) | Q(disputed=True))


def pair_vote_counts(pair: Pair) -> dict[str, int]:
    """The vote counts annotated by pairs_in_state, by category (and skip)."""
    return {
        "a": pair.votes_a,
        "b": pair.votes_b,
        "tie": pair.votes_tie,
        "both_wrong": pair.votes_both_wrong,
        "skip": pair.skips,
    }


def pair_entropy(counts: dict[str, int]) -> float:
    return vote_entropy([counts[c] for c in CATEGORIES])


def pair_detail(*, pair_id: int) -> PairDetail:
    """A pair for a lead: its prompt, candidates, gold and review state, and every vote with
    its annotator (up to VOTES_CAP)."""
    pair = (
        Pair.objects.select_related(
            "queue",
            "prompt",
            "candidate_a__config",
            "candidate_a__prompt",
            "candidate_b__config",
            "candidate_b__prompt",
            "settled_by",
        )
        .filter(pk=pair_id)
        .first()
    )
    if pair is None:
        raise NotFound(f"pair {pair_id} does not exist", field="pair")
    judgments = Judgment.objects.filter(pair=pair)
    counts = dict.fromkeys((*CATEGORIES, "skip"), 0)
    for choice, winner, n in (
        judgments.values_list("choice", "winner_id").annotate(n=Count("id")).order_by()
    ):
        counts[_category(pair, choice, winner) or "skip"] += n
    votes = [
        Vote(
            annotator_id=j.annotator_id,
            username=j.annotator.username,
            choice=j.choice,
            category=_category(pair, j.choice, j.winner_id),
            shown_left="a" if j.left_candidate_id == pair.candidate_a_id else "b",
            duration_ms=j.duration_ms,
            reason_tags=j.reason_tags,
            criteria_choices=j.criteria_choices,
            created_at=j.created_at,
        )
        for j in judgments.select_related("annotator").order_by("created_at", "id")[:VOTES_CAP]
    ]
    return PairDetail(
        pair=pair,
        counts=counts,
        entropy=pair_entropy(counts),
        votes=votes,
        votes_total=sum(counts.values()),
        reviews=list(Pair.objects.filter(review_of=pair).select_related("queue").order_by("id")),
    )


def _category(pair: Pair, choice: str, winner_id: int | None) -> str | None:
    if winner_id is not None:
        return "a" if winner_id == pair.candidate_a_id else "b"
    return None if choice == Judgment.Choice.SKIP else choice
