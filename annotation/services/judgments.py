"""Judgments: the idempotent submit and the undo of the last answer.

Submit rules (issue 5): the same client submission id returns the stored judgment, never a
second row; the side shown is mapped to the candidate through the stored presentation order;
a submit for a full pair, or without a lease that can still be honoured, is a 409; skips are
stored (the annotator never sees the pair again) but do not count towards the overlap.
A submit is one statement (statements.SUBMIT_SQL); the replay of a submission id seen before
reads it back (SUBMISSION_SQL).
"""

import json
import logging
import re
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError
from psycopg.types.json import Jsonb

from annotation import metrics
from annotation.models import Judgment, LabelingQueue
from annotation.selectors import labeling_queue_for_labeling
from annotation.services import quality, statements
from annotation.services.results import StoredJudgment, SubmitResult
from config import db
from config.errors import Conflict, NotFound, ValidationFailed
from config.input_checks import is_row_id

log = logging.getLogger(__name__)

CHOICES = tuple(Judgment.Choice.values)
# What an annotator can say is wrong: an object or a relation of the prompt (by its id or
# index in the prompt's structure), an attribute, a count, the image itself, or other.
REASON_TAG_KINDS = ("object", "relation", "attribute", "count", "quality", "other")
_REASON_TAG = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<ref>[A-Za-z0-9_.\-]{1,48}))?$")
MAX_REASON_TAGS = 16
MAX_DURATION_MS = 24 * 3600 * 1000
SUBMIT_ATTEMPTS = 3
MAX_CRITERIA = 8
CRITERION_CHOICES = ("left", "right", "tie", "both_wrong")


def judgment_input_check(
    *,
    pair_id: object,
    client_submission_id: object,
    choice: object,
    reason_tags: object,
    duration_ms: object,
) -> tuple[int, uuid.UUID, str, list[str], int | None]:
    """Validate a submit's fields; a ValidationFailed names the first bad one."""
    if not is_row_id(pair_id):
        raise ValidationFailed("pair must be a pair id", field="pair")
    if client_submission_id in (None, ""):
        raise ValidationFailed(
            "client_submission_id is required (a UUID made once per answer)",
            field="client_submission_id",
        )
    try:
        sid = (
            client_submission_id
            if isinstance(client_submission_id, uuid.UUID)
            else uuid.UUID(str(client_submission_id))
        )
    except ValueError:
        raise ValidationFailed(
            "client_submission_id must be a UUID", field="client_submission_id"
        ) from None
    if choice not in CHOICES:
        raise ValidationFailed(f"choice must be one of {', '.join(CHOICES)}", field="choice")
    tags = reason_tags if reason_tags is not None else []
    if not isinstance(tags, list) or len(tags) > MAX_REASON_TAGS:
        raise ValidationFailed(
            f"reason_tags must be a list of at most {MAX_REASON_TAGS} tags", field="reason_tags"
        )
    for tag in tags:
        match = _REASON_TAG.match(tag) if isinstance(tag, str) else None
        if match is None or match["kind"] not in REASON_TAG_KINDS:
            raise ValidationFailed(
                f"reason tag {tag!r} is not KIND or KIND:REF with KIND one of "
                f"{', '.join(REASON_TAG_KINDS)}",
                field="reason_tags",
            )
    if duration_ms is not None and (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, int)
        or not 0 <= duration_ms <= MAX_DURATION_MS
    ):
        raise ValidationFailed(
            f"duration_ms must be an integer from 0 to {MAX_DURATION_MS}", field="duration_ms"
        )
    return pair_id, sid, choice, list(dict.fromkeys(tags)), duration_ms


def judgment_criteria_check(*, queue_id: int, criteria: object, choice: str) -> dict[str, str]:
    """The answers to the queue's other criteria: {name: left|right|tie|both_wrong}, only names
    the queue asks (its first criterion is the judgment's `choice`); none with a skip. Unanswered
    criteria are allowed (a client that knows only the primary question)."""
    if criteria in (None, {}):
        return {}
    if not isinstance(criteria, dict) or len(criteria) > MAX_CRITERIA:
        raise ValidationFailed(
            f"criteria must be an object of at most {MAX_CRITERIA} answers", field="criteria"
        )
    if choice == "skip":
        raise ValidationFailed("a skip answers no criterion", field="criteria")
    asked = LabelingQueue.objects.filter(pk=queue_id).values_list("criteria", flat=True).first()
    names = [c.get("name") for c in (asked or [])[1:] if isinstance(c, dict)]
    for name, answer in criteria.items():
        if name not in names:
            raise ValidationFailed(
                f"this queue asks no criterion {str(name)[:60]!r} besides its first"
                + (f" (it asks: {', '.join(names)})" if names else ""),
                field=f"criteria.{str(name)[:60]}",
            )
        if answer not in CRITERION_CHOICES:
            raise ValidationFailed(
                f"an answer must be one of {', '.join(CRITERION_CHOICES)}",
                field=f"criteria.{name}",
            )
    return dict(criteria)


def judgment_submit(
    *,
    user: AbstractBaseUser,
    queue_id: int,
    pair_id: int,
    client_submission_id: uuid.UUID | str,
    choice: str,
    reason_tags: list[str] | None = None,
    duration_ms: int | None = None,
    criteria: object = None,
) -> SubmitResult:
    """Store an annotator's answer on a pair they hold, once per client submission id.

    The statement also settles a pair this answer brings to its target (adaptive overlap,
    ambiguity, disputes). After it, and only when it applies (services/quality.py): a gold
    answer counts towards the annotator's standing, a review copy's answer settles its
    original, a pair the statement could not settle is settled, and a disputed or ambiguous
    one goes to review."""
    pair_id, sid, choice, tags, duration_ms = judgment_input_check(
        pair_id=pair_id,
        client_submission_id=client_submission_id,
        choice=choice,
        reason_tags=reason_tags,
        duration_ms=duration_ms,
    )
    criteria = judgment_criteria_check(queue_id=queue_id, criteria=criteria, choice=choice)
    params = {
        "queue": queue_id,
        "user": user.pk,
        "pair": pair_id,
        "sid": sid,
        "choice": choice,
        "tags": Jsonb(tags),
        "criteria": Jsonb(criteria),
        "duration": duration_ms,
    }
    for attempt in range(SUBMIT_ATTEMPTS):
        try:
            row = db.statement_run(statements.SUBMIT_SQL, params)[0]
        except IntegrityError:
            # Undone as a whole: the submission id is in use, or the pair moved under us.
            # Looking again sees which (a replay, a 409, or a clean retry).
            log.warning("labeling.judgment.retry pair=%s user=%s why=integrity", pair_id, user.pk)
            if attempt + 1 == SUBMIT_ATTEMPTS:
                return _replay(user=user, pair_id=pair_id, sid=sid, judged_already=True)
            continue
        (
            replay,
            pair_found,
            allowed,
            queue_status,
            lease_status,
            _leases,
            judgment_id,
            created_at,
            _count_after,
            count_before,
            needed,
            is_gold,
            gold_correct,
            review_of,
            settle_later,
            review_due,
        ) = row
        if replay:
            return _replay(user=user, pair_id=pair_id, sid=sid)
        if not pair_found or not allowed or queue_status != "active":
            labeling_queue_for_labeling(queue_id=queue_id, user=user)  # 404 / 403 / 409 paused
            raise NotFound(f"pair {pair_id} is not in this queue", field="pair")
        if judgment_id is not None:
            metrics.judgment_stored()
            log.debug(
                "labeling.judgment.stored pair=%s user=%s choice=%s", pair_id, user.pk, choice
            )
            feedback = None
            if is_gold and choice != "skip":
                feedback = quality.gold_answer_record(
                    queue_id=queue_id,
                    annotator_id=user.pk,
                    pair_id=pair_id,
                    correct=bool(gold_correct),
                ).feedback
            elif review_of is not None:
                quality.pair_review_settle(review_pair_id=pair_id)
            elif settle_later:
                quality.pair_votes_settle(pair_id=pair_id)
            elif review_due:
                quality.pair_review_open(pair_id=pair_id)
            return SubmitResult(
                judgment=StoredJudgment(pair_id, sid, choice, tags, duration_ms, created_at),
                replayed=False,
                feedback=feedback,
            )
        if lease_status == "submitted":
            return _replay(user=user, pair_id=pair_id, sid=sid, judged_already=True)
        if lease_status == "active":
            # An active lease always holds a reserved slot; refusing it means the counters
            # disagree with the leases, which the constraints should make impossible.
            log.error("labeling.judgment.refused_active_lease pair=%s user=%s", pair_id, user.pk)
        break
    raise _no_lease(lease_status=lease_status, full=count_before >= needed)


def _no_lease(*, lease_status: str | None, full: bool) -> Conflict:
    if full:
        return Conflict(
            "this pair has all the judgments it needs", field="pair", code="pair_complete"
        )
    if lease_status == "expired":
        return Conflict(
            "your lease on this pair ran out and its slot went to someone else; ask for next",
            field="pair",
            code="lease_expired",
        )
    return Conflict("you hold no lease on this pair; ask for next", field="pair", code="no_lease")


def _replay(
    *, user: AbstractBaseUser, pair_id: int, sid: uuid.UUID, judged_already: bool = False
) -> SubmitResult:
    """The stored answer of a submission id seen before (200), or why it cannot be (409)."""
    rows = db.statement_run(statements.SUBMISSION_SQL, {"sid": sid})
    if not rows:
        if judged_already:
            raise Conflict("you judged this pair already", field="pair", code="already_judged")
        raise Conflict("this submission could not be stored", field="client_submission_id")
    stored_pair, annotator_id, choice, tags, duration_ms, created_at, undone = rows[0]
    if isinstance(tags, str):  # jsonb arrives as text on Django's connection
        tags = json.loads(tags)
    if annotator_id != user.pk or stored_pair != pair_id:
        raise Conflict(
            "this client_submission_id belongs to another submission; make a new one per answer",
            field="client_submission_id",
            code="submission_id_reused",
        )
    if undone:
        raise Conflict(
            "this submission was undone; answer again with a new client_submission_id",
            field="client_submission_id",
            code="submission_undone",
        )
    return SubmitResult(
        judgment=StoredJudgment(stored_pair, sid, choice, tags or [], duration_ms, created_at),
        replayed=True,
    )
