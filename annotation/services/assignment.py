"""The assignment hot path: leasing pairs to annotators, heartbeats, and expiry.

Rules (issue 5): `next` returns up to N pairs leased to the annotator, the ones they already
hold first; never a pair they judged, skipped or hold; never more open leases plus judgments
than the pair's overlap (a database constraint); higher priority first, then pairs closest to
completion, then the oldest. Leases expire; a heartbeat renews them; expired leases go back to
the pool.

On PostgreSQL each call is one prepared statement (pg_statements.py). Elsewhere (the SQLite
demo) the same rules run through the ORM inside one transaction; SQLite serialises writers.
The setting LABELING_ENGINE ("sql" or "orm") forces one path (the tests run both).
"""

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError

from annotation.models import LabelingQueue
from annotation.selectors import labeling_queue_for_labeling
from annotation.services import pg_statements, portable
from annotation.services.images import ImageSource
from annotation.services.queues import MAX_PREFETCH
from annotation.services.results import HeartbeatResult, LeasedItem, NextResult
from config import db
from config.errors import ValidationFailed
from config.input_checks import is_row_id
from config.remembered import Remembered

log = logging.getLogger(__name__)

# How many started pairs `next` looks at before falling back to fresh ones. It bounds the
# work per request whatever the annotator's history (their judged pairs sit at the front of
# the serving order while they wait for other annotators); a short answer triggers an exact
# scan, so no pair is ever hidden from someone who may take it.
OPEN_WINDOW = 32
# An annotator whose judged pairs fill the front of the serving order (one labeling alone, or
# far ahead of the others) would come up short in the window on every call once no fresh
# pairs are left, and the exact scan walks past their whole history each time. So each
# process remembers, per (annotator, queue), the serving-order position of the first started
# pair the last scan found for them, and `next` also looks at the `OPEN_WINDOW` started pairs
# from there: one exact scan, then a fixed number of probes per call. Each exact scan sets
# the position, later calls only move it forward, and it is forgotten after
# `POSITION_SECONDS`; a pair that rose ahead of it since (others judged it) is still served
# from the front window, or by the exact scan that any short answer triggers, so nothing is
# hidden, only served a little later.
POSITION_SECONDS = 60.0
# When even the exact scan comes up short, nothing is left for the annotator but what frees up
# later (an expired lease, a skip, new pairs). A client polling then would pay that scan of
# their history on every call, so for `EXHAUSTED_SECONDS` a short answer is final without it
# unless the sweep of expired leases freed slots (the windows and the fresh pairs are still
# read): a pair freed deep in the serving order otherwise, in that second, is served at the
# next scan after it.
EXHAUSTED_SECONDS = 1.0
# Expired leases are swept at most this often per process (and always when `next` comes up
# short), so the sweep costs nothing on most requests.
RECLAIM_EVERY_SECONDS = 5.0
RECLAIM_BATCH = 500
NEXT_ATTEMPTS = 3
MAX_HEARTBEAT_PAIRS = 50
MAX_KNOWN = 100

PREFETCH_CACHE_SECONDS = 30.0

_last_reclaim = 0.0
_positions = Remembered(seconds=POSITION_SECONDS)
_exhausted = Remembered(seconds=EXHAUSTED_SECONDS)
_prefetch_cache: dict[int, tuple[int, float]] = {}


def engine_uses_sql() -> bool:
    engine = getattr(settings, "LABELING_ENGINE", None)
    if engine == "orm":
        return False
    return db.statements_available()


def _check_count(count: int | None) -> int | None:
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PREFETCH:
        raise ValidationFailed(f"count must be between 1 and {MAX_PREFETCH}", field="count")
    return count


def _item_from_row(row: tuple) -> LeasedItem:
    pair_id, expires_at, text, structure, lsha, lkey, rsha, rkey = row
    if isinstance(structure, str):  # jsonb arrives as text on Django's connection
        structure = json.loads(structure)
    return LeasedItem(
        pair_id=pair_id,
        expires_at=expires_at,
        prompt_text=text,
        prompt_structure=structure or {},
        left=ImageSource(content_sha256=lsha, storage_key=lkey),
        right=ImageSource(content_sha256=rsha, storage_key=rkey),
    )


def _check_known(known: object) -> list[int]:
    if known is None:
        return []
    if (
        not isinstance(known, list)
        or len(known) > MAX_KNOWN
        or not all(is_row_id(p) for p in known)
    ):
        raise ValidationFailed(
            f"known must be a list of at most {MAX_KNOWN} pair ids", field="known"
        )
    return known


def pairs_next_for_annotator(
    *, user: AbstractBaseUser, queue_id: int, count: int | None = None
) -> list[LeasedItem]:
    """Up to `count` (default: the queue's prefetch) pairs leased to `user`, held ones first.

    Calling it again returns the same held leases (a reload or a retried request never takes
    more); an empty list means nothing is available to this annotator now.
    """
    return pairs_next_for_client(user=user, queue_id=queue_id, count=count).items


def pairs_next_for_client(
    *, user: AbstractBaseUser, queue_id: int, count: int | None = None, known: object = None
) -> NextResult:
    """`pairs_next_for_annotator` for a client that already has some pairs: those in `known`
    still count towards `count` but come back as ids in `known_held` (or not at all, when the
    lease is gone) instead of whole items (the API's `next`)."""
    count = _check_count(count)
    known = _check_known(known)
    if not engine_uses_sql():
        leases_reclaim_expired()
        return portable.next_orm(user=user, queue_id=queue_id, count=count, known=known)
    if count is None:
        count = _queue_prefetch(queue_id=queue_id)
        if count is None:
            labeling_queue_for_labeling(queue_id=queue_id, user=user)  # raises the 404
    _reclaim_if_due()
    params = {"queue": queue_id, "user": user.pk, "known": known}
    key = (user.pk, queue_id)
    position = _positions.get(key)
    if position is not None:
        params.update(cp=position[0], cj=position[1], ci=position[2])
    sql = pg_statements.next_sql(count=count, window=OPEN_WINDOW, cursor=position is not None)
    rows = _next_run(sql, params)
    if not rows or not rows[0][0]:
        labeling_queue_for_labeling(queue_id=queue_id, user=user)  # raises the precise 4xx
        return NextResult(items=[], known_held=[])
    first_open = rows[0][3]
    if rows[0][1] < count and (leases_reclaim_expired() or not _exhausted.get(key)):
        # Short: expired leases may be holding slots, or the windows held only pairs this
        # annotator cannot take. Sweep, then scan every started pair, and remember where the
        # first one they could take was.
        rows = _next_run(pg_statements.next_sql(count=count, window=None), params)
        log.debug("labeling.next.exact_scan queue=%s user=%s", queue_id, user.pk)
        first_open = rows[0][3] if rows else None
        position = None  # the exact scan's answer replaces the position, even an earlier one
        if first_open is None:
            _positions.forget(key)
        if not rows or rows[0][1] < count:
            _exhausted.put(key, True)
    if first_open is not None and (
        position is None or _serving_key(first_open) > _serving_key(position)
    ):
        _positions.put(key, tuple(first_open))
    new = sum(1 for row in rows if row[4])
    if new:
        log.debug("labeling.lease.granted queue=%s user=%s n=%d", queue_id, user.pk, new)
    return NextResult(
        items=[_item_from_row(row[5:]) for row in rows if row[5] is not None],
        known_held=list(rows[0][2] or []),
    )


def _serving_key(position: tuple | list) -> tuple[int, int, int]:
    """A (priority, judgments, pair id) position as a key that sorts in serving order."""
    priority, judgments, pair_id = position
    return (-priority, -judgments, pair_id)


def _next_run(sql: str, params: dict) -> list[tuple]:
    """Run a `next` statement; a race the constraints refused is undone whole and retried."""
    for attempt in range(NEXT_ATTEMPTS):
        try:
            return db.statement_run(sql, params, durable=False)
        except IntegrityError:
            if attempt + 1 == NEXT_ATTEMPTS:
                raise
            log.warning("labeling.lease.retry user=%s", params["user"])
    return []


def _queue_prefetch(*, queue_id: int) -> int | None:
    """The queue's prefetch, cached briefly per process (it changes rarely; access is always
    checked by the statement itself)."""
    now = time.monotonic()
    cached = _prefetch_cache.get(queue_id)
    if cached is not None and now - cached[1] < PREFETCH_CACHE_SECONDS:
        return cached[0]
    prefetch = LabelingQueue.objects.filter(pk=queue_id).values_list("prefetch", flat=True).first()
    if prefetch is not None:
        _prefetch_cache[queue_id] = (prefetch, now)
    return prefetch


def _reclaim_if_due() -> None:
    global _last_reclaim
    now = time.monotonic()
    if now - _last_reclaim >= RECLAIM_EVERY_SECONDS:
        _last_reclaim = now
        leases_reclaim_expired()


def leases_reclaim_expired(*, limit: int = RECLAIM_BATCH) -> int:
    """Mark leases past their expiry as expired and free their pairs' slots. Returns how many."""
    if engine_uses_sql():
        expired, _ = db.statement_run(pg_statements.reclaim_sql(limit=limit), {}, durable=False)[0]
    else:
        expired = portable.reclaim_orm(limit=limit)
    if expired:
        log.info("labeling.lease.expired n=%d", expired)
    return expired


def leases_heartbeat(*, user: AbstractBaseUser, queue_id: int, pair_ids: object) -> HeartbeatResult:
    """Renew this annotator's leases on pairs still on screen.

    `lost`: pairs they no longer hold (expired and swept, submitted, or never theirs). A lease
    past its expiry that the sweep has not released yet still holds its slot, so it is renewed.
    A lease that a concurrent sweep or submit has locked is in neither list.
    """
    if (
        not isinstance(pair_ids, list)
        or not 1 <= len(pair_ids) <= MAX_HEARTBEAT_PAIRS
        or not all(is_row_id(p) for p in pair_ids)
    ):
        raise ValidationFailed(
            f"pairs must be a list of 1 to {MAX_HEARTBEAT_PAIRS} pair ids", field="pairs"
        )
    pair_ids = sorted(set(pair_ids))
    if not engine_uses_sql():
        return portable.heartbeat_orm(user=user, queue_id=queue_id, pair_ids=pair_ids)
    rows = db.statement_run(
        pg_statements.HEARTBEAT_SQL,
        {"queue": queue_id, "user": user.pk, "pairs": pair_ids},
        durable=False,
    )
    if not rows or not rows[0][0]:
        labeling_queue_for_labeling(queue_id=queue_id, user=user)
        return HeartbeatResult(renewed={}, lost=pair_ids)
    renewed = {pid: exp for _, pid, exp in rows if pid is not None and exp is not None}
    held = {pid for _, pid, _ in rows if pid is not None}
    return HeartbeatResult(renewed=renewed, lost=[p for p in pair_ids if p not in held])


def leased_items(*, user: AbstractBaseUser, pair_ids: list[int]) -> list[LeasedItem]:
    """The items of this annotator's active leases on these pairs (as `next` shows them)."""
    if engine_uses_sql():
        rows = db.statement_run(pg_statements.ITEMS_SQL, {"user": user.pk, "pairs": list(pair_ids)})
        return [_item_from_row(row) for row in rows]
    return portable.items_for(user=user, pair_ids=pair_ids)
