"""Quality control (issue 16): gold pairs, an annotator's standing in a queue, adaptive overlap
and adjudication.

- Gold pairs have a known answer (`Pair.gold_winner`). They come from counterfactual pairs whose
  intended winner is known by construction (procedural renders whose relations the renderer
  checked are gold at once; other counterfactual pairs are proposed and become gold when a
  lead confirms them) or from a lead who marks a pair with its answer. NEXT serves them at the
  queue's gold rate, interleaved through each annotator's stream (statements.next_sql); their
  answers never fill an overlap (judgments_needed is GOLD_CAPACITY).
- Each gold answer updates the annotator's `AnnotatorQueueState`: a qualifying annotator is let
  in, or not, after the queue's qualification count; an active one is paused when the upper
  bound of the Wilson interval of their gold accuracy since the last resume falls below the
  queue's `pause_accuracy`, after at least `pause_min_gold` gold answers. A lead resumes them.
- When a pair's counted votes reach its target, `pair_votes_settle` decides: the leading answer
  leads by `adaptive_margin` votes (confident), or one more vote is wanted (up to
  `overlap_max`), or it stays split (ambiguous). A settled pair whose clear human majority goes
  against a counterfactual pair's intended winner is disputed (`Pair.disputed`). Ambiguous and
  disputed pairs, with a review queue set, send a copy there, and its answer settles the
  original (`settled_*`), which aggregation prefers.

The hot path's parts are statements (statements.py): the submit settles the pair it brings to
its target in its own statement (SUBMIT_SQL, with SETTLE_SQL when it could not), and a gold
answer is counted by one more (GOLD_SQL). What is rare (a change of standing, a review copy, a
review's answer) is plain ORM in a transaction, the row it changes locked first.
"""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import (
    GOLD_CAPACITY,
    AnnotatorProfile,
    AnnotatorQueueState,
    Judgment,
    LabelingQueue,
    Pair,
)
from annotation.services import statements
from annotation.stats import wilson_interval
from config import db
from config.errors import Conflict, NotFound, ValidationFailed
from config.input_checks import is_row_id

log = logging.getLogger(__name__)

MAX_EXPLANATION = 500


# --- gold answers and an annotator's standing -----------------------------------------------


@dataclass(frozen=True)
class GoldAnswer:
    """A gold answer's effect: whether it counted (the first answer to the pair), the
    annotator's status after it, and the explanation of a missed pair when the queue gives
    feedback (None otherwise)."""

    counted: bool
    status: str | None
    feedback: str | None


def gold_answer_record(
    *, queue_id: int, annotator_id: int, correct: bool, pair_id: int | None = None
) -> GoldAnswer:
    """Count one gold answer (not a skip) and apply the queue's qualification and pause rules.

    One statement counts it (statements.GOLD_SQL: the state's counters and trust, the
    profile's overall trust); the rules below decide on the counts it returns, and a change
    of status is written only when there is one. `pair_id`: the gold pair answered (an answer
    to a pair the annotator answered before and undid does not count); None counts it as a
    first answer."""
    params = {"queue": queue_id, "user": annotator_id, "pair": pair_id, "correct": bool(correct)}
    rows = db.statement_run(statements.GOLD_SQL, params)
    if not rows:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    if not rows[0][0]:  # no standing yet (a pair marked gold while someone held it)
        annotator_ensure_state(queue_id=queue_id, annotator_id=annotator_id)
        rows = db.statement_run(statements.GOLD_SQL, params)
    _, counted, status, answers, right, window_answers, window_right = rows[0][:7]
    rules, feedback = StandingRules(*rows[0][7:11]), rows[0][11]
    if counted:
        change = standing_change(
            rules,
            status=status,
            answers=answers,
            correct=right,
            window_answers=window_answers,
            window_correct=window_right,
        )
        if change is not None:
            status = _standing_write(
                queue_id=queue_id, annotator_id=annotator_id, before=status, change=change
            )
    if feedback is not None and not feedback:
        feedback = "This pair has a known answer, and it was the other image."
    return GoldAnswer(counted=bool(counted), status=status, feedback=feedback)


@dataclass(frozen=True)
class StandingRules:
    """A queue's qualification and pause settings (LabelingQueue's fields of these names)."""

    qualification_gold: int
    qualification_accuracy: float
    pause_accuracy: float
    pause_min_gold: int


@dataclass(frozen=True)
class StandingChange:
    status: str
    reason: str
    window_reset: bool


def standing_change(
    queue: StandingRules,
    *,
    status: str,
    answers: int,
    correct: int,
    window_answers: int,
    window_correct: int,
) -> StandingChange | None:
    """The queue's rules on an annotator's gold counts: a qualifying annotator is let in, or
    not, after `qualification_gold` answers; an active one is paused when the upper bound of
    the Wilson interval of their accuracy since the last resume is below `pause_accuracy`,
    after `pause_min_gold` answers. None: no change."""
    Status = AnnotatorQueueState.Status
    if status == Status.QUALIFYING:
        if answers < queue.qualification_gold:
            return None
        accuracy = correct / answers
        passed = accuracy >= queue.qualification_accuracy
        return StandingChange(
            status=Status.ACTIVE if passed else Status.DISQUALIFIED,
            reason=(
                f"{'passed' if passed else 'failed'} qualification: {correct} of "
                f"{answers} gold pairs right ({accuracy:.0%}; needed "
                f"{queue.qualification_accuracy:.0%})"
            ),
            window_reset=True,
        )
    if (
        status == Status.ACTIVE
        and queue.pause_accuracy > 0
        and window_answers >= max(queue.pause_min_gold, 1)
    ):
        low, high = wilson_interval(window_correct, window_answers)
        if high < queue.pause_accuracy:
            return StandingChange(
                status=Status.PAUSED,
                reason=(
                    f"auto-paused: {window_correct} of {window_answers} gold pairs right "
                    f"({window_correct / window_answers:.0%}; 95% interval "
                    f"{low:.0%}-{high:.0%}, below {queue.pause_accuracy:.0%})"
                ),
                window_reset=False,
            )
    return None


def _standing_write(
    *, queue_id: int, annotator_id: int, before: str, change: StandingChange
) -> str:
    """Write a change of status decided on the counts of one gold answer, unless the status
    moved meanwhile (a lead's pause or resume, or a concurrent answer's change): the status now."""
    fields = {
        "status": change.status,
        "reason": change.reason,
        "changed_at": timezone.now(),
        "changed_by": None,
    }
    if change.window_reset:
        fields.update(window_answers=0, window_correct=0)
    written = AnnotatorQueueState.objects.filter(
        queue_id=queue_id, annotator_id=annotator_id, status=before
    ).update(**fields)
    if not written:
        return (
            AnnotatorQueueState.objects.filter(queue_id=queue_id, annotator_id=annotator_id)
            .values_list("status", flat=True)
            .get()
        )
    log_call = log.warning if change.status == AnnotatorQueueState.Status.PAUSED else log.info
    log_call(
        "labeling.quality.standing queue=%s user=%s status=%s reason=%s",
        queue_id,
        annotator_id,
        change.status,
        change.reason,
    )
    return change.status


def annotators_model_scores_record(*, scores: dict[int, float], version_id: int) -> int:
    """The aggregation model's accuracy estimate per annotator (a dataset version frozen with
    Dawid-Skene), kept as their model trust; a newer version's estimate replaces an older one.
    Returns how many profiles were written."""
    written = 0
    with transaction.atomic():
        for annotator_id, score in sorted(scores.items()):
            if not 0.0 <= float(score) <= 1.0:
                continue
            profile, _ = AnnotatorProfile.objects.select_for_update().get_or_create(
                user_id=annotator_id
            )
            if profile.model_score_version is not None and profile.model_score_version > version_id:
                continue
            profile.model_score = float(score)
            profile.model_score_version = version_id
            profile.save(update_fields=["model_score", "model_score_version"])
            written += 1
    log.info("labeling.quality.model_scores version=%s n=%d", version_id, written)
    return written


def _state_locked(*, queue_id: int, annotator_id: object) -> AnnotatorQueueState:
    if not is_row_id(annotator_id):
        raise ValidationFailed("annotator must be a user id", field="annotator")
    if not LabelingQueue.objects.filter(pk=queue_id).exists():
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    state = (
        AnnotatorQueueState.objects.select_for_update()
        .filter(queue_id=queue_id, annotator_id=annotator_id)
        .first()
    )
    if state is None:
        raise NotFound(f"user {annotator_id} has not labeled queue {queue_id}", field="annotator")
    return state


def annotator_queue_resume(
    *, queue_id: int, annotator_id: int, by: AbstractBaseUser | None
) -> AnnotatorQueueState:
    """Let a paused (or disqualified) annotator label the queue again. The pause rule then
    counts only the gold answers they give from now on."""
    with transaction.atomic():
        state = _state_locked(queue_id=queue_id, annotator_id=annotator_id)
        if state.status not in AnnotatorQueueState.STOPPED:
            raise Conflict(
                f"user {annotator_id} is {state.status} in this queue, not paused",
                field="annotator",
                code="not_paused",
            )
        state.status = AnnotatorQueueState.Status.ACTIVE
        state.reason = f"resumed by {by}" if by else "resumed"
        state.window_answers = state.window_correct = 0
        state.changed_at, state.changed_by = timezone.now(), by
        state.save()
    log.info("labeling.quality.resumed queue=%s user=%s", queue_id, annotator_id)
    return state


def annotator_queue_pause(
    *, queue_id: int, annotator_id: int, by: AbstractBaseUser | None, reason: str = ""
) -> AnnotatorQueueState:
    """A lead stops serving this queue to an annotator (their past answers stay)."""
    reason = (reason or "").strip()
    if len(reason) > 250 or "\x00" in reason:
        raise ValidationFailed("reason must be at most 250 characters", field="reason")
    if not is_row_id(annotator_id):
        raise ValidationFailed("annotator must be a user id", field="annotator")
    if not get_user_model().objects.filter(pk=annotator_id).exists():
        raise NotFound(f"user {annotator_id} does not exist", field="annotator")
    annotator_ensure_state(queue_id=queue_id, annotator_id=annotator_id)
    with transaction.atomic():
        state = _state_locked(queue_id=queue_id, annotator_id=annotator_id)
        if state.status in AnnotatorQueueState.STOPPED:
            raise Conflict(
                f"user {annotator_id} is already {state.status}",
                field="annotator",
                code="already_paused",
            )
        state.status = AnnotatorQueueState.Status.PAUSED
        state.reason = f"paused by {by}: {reason}" if reason else f"paused by {by}"
        state.changed_at, state.changed_by = timezone.now(), by
        state.save()
    log.info("labeling.quality.paused_by_lead queue=%s user=%s", queue_id, annotator_id)
    return state


def annotator_ensure_state(*, queue_id: int, annotator_id: int) -> AnnotatorQueueState:
    """The annotator's state row (made active, or qualifying when the queue asks for it)."""
    queue = LabelingQueue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    state, _ = AnnotatorQueueState.objects.get_or_create(
        queue_id=queue_id, annotator_id=annotator_id, defaults=_state_new(queue)
    )
    return state


def _state_new(queue: LabelingQueue) -> dict:
    """A new standing: qualifying when the queue asks for qualification, else active (NEXT's
    statement makes the same choice for the rows it writes)."""
    qualifying = bool(queue.qualification_gold)
    Status = AnnotatorQueueState.Status
    return {"status": Status.QUALIFYING if qualifying else Status.ACTIVE}


# --- gold pairs ------------------------------------------------------------------------------


def _pair_locked(pair_id: object) -> Pair:
    if not is_row_id(pair_id):
        raise ValidationFailed("pair must be a pair id", field="pair")
    pair = Pair.objects.select_for_update().filter(pk=pair_id).first()
    if pair is None:
        raise NotFound(f"pair {pair_id} does not exist", field="pair")
    if pair.review_of_id is not None:
        raise Conflict(
            "this pair is a review copy of another pair", field="pair", code="review_copy"
        )
    return pair


def _explanation_clean(explanation: object) -> str:
    if explanation is None:
        return ""
    if not isinstance(explanation, str) or len(explanation) > MAX_EXPLANATION:
        raise ValidationFailed(
            f"explanation must be text of at most {MAX_EXPLANATION} characters",
            field="explanation",
        )
    if "\x00" in explanation:
        raise ValidationFailed("explanation must not contain NUL", field="explanation")
    return explanation.strip()


def _gold_set(pair: Pair, *, winner_id: int, source: str, explanation: str | None) -> None:
    pair.is_gold = True
    pair.gold_key = gold_key_of(pair.pk)
    pair.gold_winner_id = winner_id
    pair.gold_source = source
    if explanation is not None:
        pair.gold_explanation = explanation
    pair.judgments_needed = GOLD_CAPACITY
    pair.save(
        update_fields=[
            "is_gold",
            "gold_key",
            "gold_winner",
            "gold_source",
            "gold_explanation",
            "judgments_needed",
        ]
    )


def pair_gold_mark(
    *, pair_id: object, winner_id: object, explanation: object = "", by: AbstractBaseUser | None
) -> Pair:
    """A lead marks a pair as gold with its answer (one of its two images) and, optionally, an
    explanation shown after a miss when the queue gives feedback."""
    explanation = _explanation_clean(explanation)
    with transaction.atomic():
        pair = _pair_locked(pair_id)
        if winner_id not in (pair.candidate_a_id, pair.candidate_b_id):
            raise ValidationFailed(
                "winner must be the id of one of the pair's two candidates", field="winner"
            )
        _gold_set(pair, winner_id=winner_id, source=Pair.GoldSource.LEAD, explanation=explanation)
    log.info("labeling.gold.marked pair=%s by=%s", pair.pk, getattr(by, "pk", None))
    return pair


def pair_gold_unmark(*, pair_id: object, by: AbstractBaseUser | None) -> Pair:
    """The pair is a regular pair again, wanting the queue's overlap (or what it has)."""
    with transaction.atomic():
        pair = _pair_locked(pair_id)
        if not pair.is_gold:
            raise Conflict("this pair is not gold", field="pair", code="not_gold")
        queue = LabelingQueue.objects.get(pk=pair.queue_id)
        pair.is_gold = False
        pair.gold_source = ""
        pair.judgments_needed = max(queue.overlap, pair.judgments_count + pair.reserved_count, 1)
        pair.save(update_fields=["is_gold", "gold_source", "judgments_needed"])
    log.info("labeling.gold.unmarked pair=%s by=%s", pair.pk, getattr(by, "pk", None))
    return pair


def pairs_gold_confirm(*, queue_id: int, pair_ids: object, by: AbstractBaseUser | None) -> int:
    """A lead confirms proposed gold pairs (counterfactual pairs whose renderer could not
    check the intended winner): they become gold, their intended winner the answer."""
    if (
        not isinstance(pair_ids, list)
        or not 1 <= len(pair_ids) <= 1000
        or not all(is_row_id(p) for p in pair_ids)
    ):
        raise ValidationFailed("pairs must be a list of 1 to 1000 pair ids", field="pairs")
    confirmed = 0
    with transaction.atomic():
        pairs = list(
            Pair.objects.select_for_update()
            .filter(pk__in=pair_ids, queue_id=queue_id)
            .order_by("pk")
        )
        found = {p.pk for p in pairs}
        missing = [p for p in pair_ids if p not in found]
        if missing:
            raise NotFound(f"pairs not in this queue: {missing[:5]}", field="pairs")
        for pair in pairs:
            if pair.gold_source != Pair.GoldSource.PROPOSED or pair.intended_winner_id is None:
                raise Conflict(
                    f"pair {pair.pk} is not a proposed gold pair",
                    field="pairs",
                    code="not_proposed",
                )
            _gold_set(
                pair,
                winner_id=pair.intended_winner_id,
                source=Pair.GoldSource.CONFIRMED,
                explanation=None,
            )
            confirmed += 1
    log.info("labeling.gold.confirmed queue=%s n=%d", queue_id, confirmed)
    return confirmed


def gold_verified_by_renderer(winner_params: dict | None) -> bool:
    """A procedural render whose renderer checked that every relation of its prompt holds."""
    holds = (winner_params or {}).get("relations_hold")
    return isinstance(holds, list) and bool(holds) and all(h is True for h in holds)


def gold_key_of(pair_id: int) -> float:
    """A gold pair's place in its queue's pool (pair_gold_idx): a hash of its id, spread
    uniformly in [0, 1), the same wherever and whenever it is made gold."""
    digest = hashlib.blake2b(f"gold:{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def gold_chosen(pair_id: int, *, share: float, seed: int) -> bool:
    """Whether a pair is among the seeded `share` made gold: a hash of (seed, pair), so the
    choice does not depend on how a build was batched."""
    digest = hashlib.blake2b(f"{seed}:{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def pairs_gold_choose(
    *, pair_ids: Iterable[int], share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Of freshly built counterfactual pairs, the seeded `share` that becomes gold: those whose
    intended winner the procedural renderer checked (gold at once) and the others (proposed,
    for a lead to confirm). Returns (gold ids, proposed ids)."""
    take = [pk for pk in pair_ids if gold_chosen(pk, share=share, seed=seed)]
    if not take:
        return [], []
    gold, proposed = [], []
    rows = Pair.objects.filter(pk__in=take, intended_winner__isnull=False).values_list(
        "pk", "intended_winner__generation_params", "intended_winner__config__backend"
    )
    for pk, params, backend in rows:
        if backend == "procedural" and gold_verified_by_renderer(params):
            gold.append(pk)
        else:
            proposed.append(pk)
    if gold:
        Pair.objects.filter(pk__in=gold).update(
            is_gold=True,
            gold_winner_id=F("intended_winner_id"),
            gold_source=Pair.GoldSource.PROCEDURAL,
            judgments_needed=GOLD_CAPACITY,
        )
        Pair.objects.bulk_update(
            [Pair(pk=pk, gold_key=gold_key_of(pk)) for pk in gold], ["gold_key"], batch_size=1000
        )
    if proposed:
        Pair.objects.filter(pk__in=proposed).update(gold_source=Pair.GoldSource.PROPOSED)
    log.info("labeling.gold.chosen gold=%d proposed=%d", len(gold), len(proposed))
    return gold, proposed


# --- votes: adaptive overlap, ambiguity, disputes, adjudication --------------------------------


@dataclass(frozen=True)
class Settled:
    resolution: str
    judgments_needed: int
    disputed: bool
    sent_to_review: bool


def pair_votes_settle(*, pair_id: int) -> Settled | None:
    """Settle a pair at its target: stop (confident), ask for one more vote (adaptive overlap,
    up to the queue's maximum), or mark it ambiguous; a disputed or ambiguous pair goes to the
    queue's review queue. The submit that brings a pair to its target settles it in its own
    statement; this is for when it could not (statements.SUBMIT_SQL), in one statement with
    the same rule (SETTLE_SQL). None: nothing to settle (gold, a review copy, or not at its
    target). Idempotent: settling a pair again changes nothing."""
    rows = db.statement_run(statements.SETTLE_SQL, {"pair": pair_id})
    if not rows:
        return None
    resolution, needed, disputed, review_due = rows[0]
    if resolution == Pair.Resolution.OPEN:
        log.debug("labeling.adaptive.extended pair=%s to=%d", pair_id, needed)
    sent = bool(review_due) and pair_review_open(pair_id=pair_id)
    return Settled(resolution, needed, bool(disputed), sent)


def pair_review_open(*, pair_id: int) -> bool:
    """Send a settled, disputed or ambiguous pair to its queue's review queue (once; the
    settle decided it should go). False: it is in review already, or the queue has none."""
    with transaction.atomic():
        pair = Pair.objects.select_for_update().get(pk=pair_id)
        queue = LabelingQueue.objects.get(pk=pair.queue_id)
        if pair.review != Pair.Review.NONE or not queue.review_queue_id:
            return False
        _review_start(pair, review_queue_id=queue.review_queue_id)
    return True


def _review_start(pair: Pair, *, review_queue_id: int) -> Pair:
    """The pair (locked by the caller) goes to review: its copy in the review queue, one vote
    wanted, and `review` pending."""
    copy, _ = Pair.objects.get_or_create(
        queue_id=review_queue_id,
        candidate_a_id=pair.candidate_a_id,
        candidate_b_id=pair.candidate_b_id,
        defaults={
            "kind": pair.kind,
            "prompt_id": pair.prompt_id,
            "intended_winner_id": pair.intended_winner_id,
            "review_of": pair,
            "judgments_needed": 1,
            "priority": pair.priority,
        },
    )
    pair.review = Pair.Review.PENDING
    pair.save(update_fields=["review"])
    log.info("labeling.review.sent pair=%s copy=%s", pair.pk, copy.pk)
    return copy


def pair_review_send(*, pair_id: object, by: AbstractBaseUser | None) -> Pair:
    """A lead sends a pair to its queue's review queue by hand."""
    with transaction.atomic():
        pair = _pair_locked(pair_id)
        queue = LabelingQueue.objects.get(pk=pair.queue_id)
        if not queue.review_queue_id:
            raise Conflict(
                "this pair's queue has no review queue",
                field="review_queue",
                code="no_review_queue",
            )
        if pair.review != Pair.Review.NONE:
            raise Conflict("this pair is in review already", field="pair", code="in_review")
        _review_start(pair, review_queue_id=queue.review_queue_id)
    log.info("labeling.review.requested pair=%s by=%s", pair.pk, getattr(by, "pk", None))
    return pair


def pair_review_settle(*, review_pair_id: int) -> Pair | None:
    """A reviewer's answer on a review copy settles the original pair (a skip settles nothing).
    The first answer settles it; the copy wants one."""
    with transaction.atomic():
        copy = Pair.objects.select_for_update().filter(pk=review_pair_id).first()
        if copy is None or copy.review_of_id is None:
            return None
        original = Pair.objects.select_for_update().get(pk=copy.review_of_id)
        judgment = (
            Judgment.objects.filter(pair_id=copy.pk)
            .exclude(choice=Judgment.Choice.SKIP)
            .order_by("created_at", "pk")
            .first()
        )
        if judgment is None or original.review == Pair.Review.SETTLED:
            return original
        original.settled_choice = "winner" if judgment.winner_id is not None else judgment.choice
        original.settled_winner_id = judgment.winner_id
        original.settled_by_id = judgment.annotator_id
        original.settled_at = judgment.created_at
        original.review = Pair.Review.SETTLED
        original.save(
            update_fields=[
                "settled_choice",
                "settled_winner",
                "settled_by",
                "settled_at",
                "review",
            ]
        )
    log.info("labeling.review.settled pair=%s by=%s", original.pk, judgment.annotator_id)
    return original
