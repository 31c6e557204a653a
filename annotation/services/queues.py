"""Labeling queues: creation, changes, pause/resume, and who may label one.

The admin and the API both save queues through these services. A queue is open to the users
and groups it names; one that names neither would be invisible to every annotator, so it is
refused (field `allowed_groups`). A queue that names neither (the groups left out, not given
empty) is open to every annotator (the `annotator` group); a lead stages a queue before
opening it by pausing it.
"""

import logging
import re
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction

from annotation.models import LabelingQueue
from config.errors import NotFound, ValidationFailed
from config.input_checks import is_row_id, text_check
from config.roles import Role, role_groups_ensure

log = logging.getLogger(__name__)

MAX_OVERLAP = 50
MAX_PREFETCH = 20
MIN_LEASE_SECONDS = 10
MAX_LEASE_SECONDS = 24 * 3600
EVERY_ANNOTATOR = (Role.ANNOTATOR.value,)


def labeling_queue_settings_check(*, overlap: int, lease_seconds: int, prefetch: int) -> None:
    if not 1 <= overlap <= MAX_OVERLAP:
        raise ValidationFailed(f"overlap must be between 1 and {MAX_OVERLAP}", field="overlap")
    if not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS:
        raise ValidationFailed(
            f"lease_seconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}",
            field="lease_seconds",
        )
    if not 1 <= prefetch <= MAX_PREFETCH:
        raise ValidationFailed(f"prefetch must be between 1 and {MAX_PREFETCH}", field="prefetch")


# Quality control settings (issue 16; annotation/services/quality.py) and their bounds.
QUALITY_DEFAULTS = {
    "gold_rate": 0.0,
    "gold_feedback": False,
    "qualification_gold": 0,
    "qualification_accuracy": 0.8,
    "pause_accuracy": 0.8,
    "pause_min_gold": 20,
    "speed_floor_ms": 1500,
    "overlap_max": None,
    "adaptive_margin": 2,
    "review_queue": None,
    "criteria": [],
    "kind": LabelingQueue.Kind.LABELING.value,
}
MAX_GOLD_RATE = 0.5
MAX_CRITERIA = 4
_CRITERION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _number(values: dict, key: str, low: float, high: float, *, integer: bool) -> float | int:
    value = values[key]
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ValidationFailed(f"{key} must be {kind} from {low} to {high}", field=f"quality.{key}")
    return value


def labeling_queue_quality_check(
    quality: object, *, overlap: int, current: dict | None = None, queue_id: int | None = None
) -> dict:
    """The quality settings of a queue, checked and complete (`current` or the defaults fill in
    what is not given); a ValidationFailed names `quality.<key>`."""
    if quality is None:
        quality = {}
    if not isinstance(quality, dict):
        raise ValidationFailed("quality must be an object of settings", field="quality")
    unknown = sorted(set(quality) - set(QUALITY_DEFAULTS))
    if unknown:
        raise ValidationFailed(
            f"unknown setting {unknown[0]!r}; known: {', '.join(QUALITY_DEFAULTS)}",
            field=f"quality.{str(unknown[0])[:60]}",
        )
    values = {**QUALITY_DEFAULTS, **(current or {}), **quality}
    _number(values, "gold_rate", 0, MAX_GOLD_RATE, integer=False)
    _number(values, "qualification_gold", 0, 100, integer=True)
    _number(values, "qualification_accuracy", 0, 1, integer=False)
    _number(values, "pause_accuracy", 0, 1, integer=False)
    _number(values, "pause_min_gold", 1, 1000, integer=True)
    _number(values, "speed_floor_ms", 0, 600_000, integer=True)
    _number(values, "adaptive_margin", 1, MAX_OVERLAP, integer=True)
    if not isinstance(values["gold_feedback"], bool):
        raise ValidationFailed("gold_feedback must be true or false", field="quality.gold_feedback")
    if values["overlap_max"] is not None:
        _number(values, "overlap_max", overlap, MAX_OVERLAP, integer=True)
    if values["kind"] not in LabelingQueue.Kind.values:
        raise ValidationFailed(
            f"kind must be one of {', '.join(LabelingQueue.Kind.values)}", field="quality.kind"
        )
    review = values["review_queue"]
    if isinstance(review, LabelingQueue):
        review = values["review_queue"] = review.pk
    if review is not None:
        if not is_row_id(review) or review == queue_id:
            raise ValidationFailed(
                "review_queue must be the id of another queue", field="quality.review_queue"
            )
        kind = LabelingQueue.objects.filter(pk=review).values_list("kind", flat=True).first()
        if kind != LabelingQueue.Kind.REVIEW:
            raise ValidationFailed(
                "review_queue must be an existing queue of kind review",
                field="quality.review_queue",
            )
        if values["kind"] == LabelingQueue.Kind.REVIEW:
            raise ValidationFailed(
                "a review queue has no review queue of its own", field="quality.review_queue"
            )
    criteria = values["criteria"]
    if not isinstance(criteria, list) or len(criteria) > MAX_CRITERIA:
        raise ValidationFailed(
            f"criteria must be a list of at most {MAX_CRITERIA} questions", field="quality.criteria"
        )
    names = set()
    for index, criterion in enumerate(criteria):
        field = f"quality.criteria[{index}]"
        if not isinstance(criterion, dict) or set(criterion) != {"name", "question"}:
            raise ValidationFailed("a criterion is {name, question}", field=field)
        name, question = criterion["name"], criterion["question"]
        if not isinstance(name, str) or not _CRITERION_NAME.match(name) or name in names:
            raise ValidationFailed(
                "name must be a new lowercase slug (letters, digits, _; up to 32)",
                field=f"{field}.name",
            )
        if not isinstance(question, str) or not 1 <= len(question.strip()) <= 300:
            raise ValidationFailed(
                "question must be text of 1 to 300 characters", field=f"{field}.question"
            )
        text_check(question, field=f"{field}.question")
        names.add(name)
    values["criteria"] = [{"name": c["name"], "question": c["question"].strip()} for c in criteria]
    return values


def _quality_apply(queue: LabelingQueue, values: dict) -> list[str]:
    fields = []
    for key, value in values.items():
        attribute = "review_queue_id" if key == "review_queue" else key
        setattr(queue, attribute, value)
        fields.append(key)
    return fields


def _name_clean(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a queue name of 1 to 200 characters is required", field="name")
    return name


def labeling_queue_audience_check(
    *, allowed_users: Iterable[AbstractBaseUser], allowed_group_names: Iterable[str]
) -> list[Group]:
    """The groups named (the role groups are made on first use); refuses unknown groups and a
    queue that names neither a group nor a user, which no annotator would ever see."""
    group_names = sorted(set(allowed_group_names))
    if not group_names and not list(allowed_users):
        raise ValidationFailed(
            "nobody could label this queue: choose allowed groups (e.g. annotator) or allowed "
            "users",
            field="allowed_groups",
        )
    groups = list(Group.objects.filter(name__in=group_names))
    missing = set(group_names) - {g.name for g in groups}
    if missing & {role.value for role in Role}:
        role_groups_ensure()  # the role groups are the project's own; made on first use
        groups = list(Group.objects.filter(name__in=group_names))
        missing = set(group_names) - {g.name for g in groups}
    if missing:
        raise ValidationFailed(
            f"unknown group(s): {', '.join(sorted(missing))}", field="allowed_groups"
        )
    return groups


def labeling_queue_create(
    *,
    name: str,
    instructions: str = "",
    overlap: int = 3,
    lease_seconds: int = 600,
    prefetch: int = 3,
    allowed_users: Iterable[AbstractBaseUser] = (),
    allowed_group_names: Iterable[str] | None = None,
    created_by: AbstractBaseUser | None = None,
    exist_ok: bool = False,
    quality: dict | None = None,
) -> LabelingQueue:
    """Create a queue (active) and who may label it: users, and groups by name. With neither
    named (`allowed_group_names` left out), every annotator may.

    With exist_ok an existing queue of that name is returned unchanged (the demo seeds twice).
    """
    name = _name_clean(name)
    labeling_queue_settings_check(overlap=overlap, lease_seconds=lease_seconds, prefetch=prefetch)
    quality_values = labeling_queue_quality_check(quality, overlap=overlap)
    allowed_users = list(allowed_users)
    if allowed_group_names is None:
        allowed_group_names = () if allowed_users else EVERY_ANNOTATOR
    groups = labeling_queue_audience_check(
        allowed_users=allowed_users, allowed_group_names=allowed_group_names
    )
    with transaction.atomic():
        queue, created = LabelingQueue.objects.get_or_create(
            name=name,
            defaults={
                "instructions": instructions,
                "overlap": overlap,
                "lease_seconds": lease_seconds,
                "prefetch": prefetch,
                "created_by": created_by,
                **{
                    ("review_queue_id" if key == "review_queue" else key): value
                    for key, value in quality_values.items()
                },
            },
        )
        if not created:
            if exist_ok:
                return queue
            raise ValidationFailed(f"a queue named {name!r} exists already", field="name")
        queue.allowed_users.set(allowed_users)
        queue.allowed_groups.set(groups)
    log.info("labeling.queue.created queue=%s name=%s overlap=%d", queue.pk, name, overlap)
    return queue


def labeling_queue_update(
    *,
    queue_id: int,
    name: str,
    instructions: str,
    overlap: int,
    lease_seconds: int,
    prefetch: int,
    allowed_users: Iterable[AbstractBaseUser],
    allowed_group_names: Iterable[str],
    quality: dict | None = None,
) -> LabelingQueue:
    """Change a queue's settings and who may label it (its status: pause and resume). Quality
    settings not given keep their values."""
    name = _name_clean(name)
    labeling_queue_settings_check(overlap=overlap, lease_seconds=lease_seconds, prefetch=prefetch)
    current = (
        LabelingQueue.objects.filter(pk=queue_id)
        .values(*[k if k != "review_queue" else "review_queue_id" for k in QUALITY_DEFAULTS])
        .first()
    )
    if current is not None:
        current["review_queue"] = current.pop("review_queue_id")
    quality_values = labeling_queue_quality_check(
        quality, overlap=overlap, current=current, queue_id=queue_id
    )
    allowed_users = list(allowed_users)
    groups = labeling_queue_audience_check(
        allowed_users=allowed_users, allowed_group_names=allowed_group_names
    )
    with transaction.atomic():
        queue = LabelingQueue.objects.select_for_update().filter(pk=queue_id).first()
        if queue is None:
            raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
        queue.name = name
        queue.instructions = instructions
        queue.overlap = overlap
        queue.lease_seconds = lease_seconds
        queue.prefetch = prefetch
        quality_fields = _quality_apply(queue, quality_values)
        try:
            with transaction.atomic():
                queue.save(
                    update_fields=[
                        "name",
                        "instructions",
                        "overlap",
                        "lease_seconds",
                        "prefetch",
                        *quality_fields,
                    ]
                )
        except IntegrityError:  # the name is another queue's (a unique constraint)
            raise ValidationFailed(f"a queue named {name!r} exists already", field="name") from None
        queue.allowed_users.set(allowed_users)
        queue.allowed_groups.set(groups)
    log.info("labeling.queue.changed queue=%s name=%s overlap=%d", queue.pk, name, overlap)
    return queue


def labeling_queue_pause(*, queue_id: int) -> LabelingQueue:
    """Stop serving a queue: next, submit and heartbeat answer 409 until it is resumed."""
    return _status_set(queue_id=queue_id, status=LabelingQueue.Status.PAUSED)


def labeling_queue_resume(*, queue_id: int) -> LabelingQueue:
    return _status_set(queue_id=queue_id, status=LabelingQueue.Status.ACTIVE)


def _status_set(*, queue_id: int, status: str) -> LabelingQueue:
    updated = LabelingQueue.objects.filter(pk=queue_id).update(status=status)
    if not updated:
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")
    log.info("labeling.queue.%s queue=%s", status, queue_id)
    return LabelingQueue.objects.get(pk=queue_id)
