"""What the hot path's services return: leased items, `next` answers, heartbeats, judgments."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from annotation.services.images import ImageSource


@dataclass(frozen=True)
class LeasedItem:
    pair_id: int
    expires_at: datetime
    prompt_text: str
    prompt_structure: dict
    left: ImageSource
    right: ImageSource


@dataclass(frozen=True)
class NextResult:
    items: list[LeasedItem]  # held pairs (except the known ones) first, then new ones
    known_held: list[int]  # the known pairs this annotator still holds


@dataclass(frozen=True)
class HeartbeatResult:
    renewed: dict[int, datetime]
    lost: list[int]


@dataclass(frozen=True)
class StoredJudgment:
    pair_id: int
    client_submission_id: uuid.UUID
    choice: str
    reason_tags: list[str]
    duration_ms: int | None
    created_at: datetime


@dataclass(frozen=True)
class SubmitResult:
    judgment: StoredJudgment
    replayed: bool
    # After a missed gold pair in a queue that gives feedback: why the other image is right.
    feedback: str | None = None
