"""The assignment hot path: leasing pairs to annotators, heartbeats, and expiry.

Rules (issue 5): `next` returns up to N pairs leased to the annotator, the ones they already
hold first; never a pair they judged, skipped or hold; never more open leases plus judgments
than the pair's overlap (a database constraint); higher priority first, then pairs closest to
completion, then the oldest. Leases expire; a heartbeat renews them; expired leases go back to
the pool.

Each call is one prepared statement (statements.py). Nothing is remembered between requests:
what `next` serves follows from the database alone, whichever process answers.
"""

import json
import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError

from annotation.models import AnnotatorQueueState, LabelingQueue
from annotation.selectors import annotator_stopped, labeling_queue_for_labeling
from annotation.services import statements
from annotation.services.images import ImageSource
from annotation.services.queues import MAX_PREFETCH
from annotation.services.results import HeartbeatResult, LeasedItem, NextResult
from config import db
from config.errors import Conflict, ValidationFailed
from config.input_checks import is_row_id

log = logging.getLogger(__name__)

# How many started pairs `next` looks at first. It bounds the work of a request whatever the
# annotator's history (pairs they judged wait at the front of the serving order for other
# annotators); a short answer is followed by the exact scan, so no pair is ever hidden from
# someone who may take it.
OPEN_WINDOW = 32
RECLAIM_BATCH = 500
NEXT_ATTEMPTS = 3
MAX_HEARTBEAT_PAIRS = 50
MAX_KNOWN = 100


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
    lease is gone) instead of whole items (the API's `next`).

    First the window of started pairs and the fresh ones. When that comes up short (the window
    held only pairs this annotator cannot take, or expired leases hold the slots), the expired
    leases are swept if any are due and every started pair is scanned in serving order: the
    answer is then exact. Otherwise a due sweep runs after the answer, so the next request
    sees the freed slots.
    """
    count = _check_count(count)
    known = _check_known(known)
    if count is None:
        count = LabelingQueue.objects.filter(pk=queue_id).values_list("prefetch", flat=True).first()
        if count is None:
            labeling_queue_for_labeling(queue_id=queue_id, user=user)  # raises the 404
    params = {"queue": queue_id, "user": user.pk, "known": known}
    rows = _next_run(statements.next_sql(count=count, window=OPEN_WINDOW), params)
    if not rows or not rows[0][0]:
        labeling_queue_for_labeling(queue_id=queue_id, user=user)  # raises the precise 4xx
        return NextResult(items=[], known_held=[])
    holding, lease_due, standing = rows[0][1], rows[0][3], rows[0][4]
    if standing in AnnotatorQueueState.STOPPED:
        raise annotator_stopped(queue_id=queue_id, user=user) or Conflict(
            "you get no pairs from this queue now", field="queue", code="annotator_paused"
        )
    if lease_due:
        leases_reclaim_expired()
    if holding < count:
        rows = _next_run(statements.next_sql(count=count, window=None), params)
        log.debug("labeling.next.exact_scan queue=%s user=%s", queue_id, user.pk)
    new = sum(1 for row in rows if row[6])
    if new:
        log.debug("labeling.lease.granted queue=%s user=%s n=%d", queue_id, user.pk, new)
    return NextResult(
        items=[_item_from_row(row[7:]) for row in rows if row[7] is not None],
        known_held=list(rows[0][2] or []),
    )


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


def leases_reclaim_expired(*, limit: int = RECLAIM_BATCH) -> int:
    """Mark leases past their expiry as expired and free their pairs' slots. Returns how many."""
    expired, _ = db.statement_run(statements.reclaim_sql(limit=limit), {}, durable=False)[0]
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
    rows = db.statement_run(
        statements.HEARTBEAT_SQL,
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
    rows = db.statement_run(statements.ITEMS_SQL, {"user": user.pk, "pairs": list(pair_ids)})
    return [_item_from_row(row) for row in rows]
