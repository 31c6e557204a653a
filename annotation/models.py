"""Labeling queues, pairs, leases and judgments.

Invariants held by the database here (design.md):
- a pair is stored once per unordered pair of candidates within a queue (a < b, unique);
- a pair never holds more judgments than its overlap target (counter <= target, F() updates);
- an annotator judges a pair once (unique pair+annotator) and holds at most one lease on it;
- a retried submit never makes a second judgment (unique client submission id);
- a counterfactual pair's intended winner is one of its two candidates;
- open leases plus judgments never exceed a pair's overlap (judgments + reserved <= needed).

Skips are stored as judgments (so the annotator never sees the pair again) but do not count
towards the overlap: the pair goes on to someone who can judge it.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q

from generation_workers.models import Candidate, Prompt

# A gold pair's judgments_needed: gold answers never fill an overlap, so every annotator of
# the queue may answer it once (a smallint, as the counters are).
GOLD_CAPACITY = 32000


class AnnotatorProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_profile"
    )
    # Filled in by quality control: the gold posterior over every queue; null until measured.
    quality_score = models.FloatField(null=True, blank=True)
    # The aggregation model's estimate of this annotator's accuracy (Dawid-Skene, from the
    # newest version frozen with it: its id), a trust score for annotators without gold answers.
    model_score = models.FloatField(null=True, blank=True)
    model_score_version = models.PositiveIntegerField(null=True, blank=True)
    daily_target = models.PositiveIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"annotator {self.user}"


class LabelingQueue(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        PAUSED = "paused", "paused"

    class Kind(models.TextChoices):
        LABELING = "labeling", "labeling"
        # Holds copies of disputed pairs of other queues (Pair.review_of); its members settle them.
        REVIEW = "review", "review (adjudication)"

    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True, help_text="Markdown, shown beside every pair.")
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Judgments wanted per pair.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    allowed_groups = models.ManyToManyField(Group, blank=True, related_name="labeling_queues")
    allowed_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="labeling_queues"
    )
    lease_seconds = models.PositiveIntegerField(default=600)
    prefetch = models.PositiveSmallIntegerField(default=3)
    kind = models.CharField(
        max_length=16, choices=Kind.choices, default=Kind.LABELING, db_default=Kind.LABELING
    )
    # The questions asked per pair: [{"name": slug, "question": text}, ...]. Empty: the one
    # default question. The first is the primary criterion (Judgment.choice); the others'
    # answers are stored in Judgment.criteria_choices.
    criteria = models.JSONField(
        default=list, blank=True, db_default=models.Value([], output_field=models.JSONField())
    )
    # Quality control (issue 16; annotation/services/quality.py).
    gold_rate = models.FloatField(
        default=0.0,
        db_default=0.0,
        help_text="Share of each annotator's items that are gold pairs (0 to 0.5).",
    )
    gold_feedback = models.BooleanField(
        default=False, db_default=False, help_text="After a missed gold pair, show its explanation."
    )
    qualification_gold = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="Gold pairs to pass before real pairs are served (0: none).",
    )
    qualification_accuracy = models.FloatField(default=0.8, db_default=0.8)
    pause_accuracy = models.FloatField(
        default=0.8,
        db_default=0.8,
        help_text="Auto-pause an annotator whose gold accuracy's upper bound (Wilson 95%) falls "
        "below this (0: never).",
    )
    pause_min_gold = models.PositiveSmallIntegerField(
        default=20,
        db_default=20,
        help_text="Gold answers needed before an annotator can be auto-paused.",
    )
    speed_floor_ms = models.PositiveIntegerField(
        default=1500, db_default=1500, help_text="Answers faster than this are flagged."
    )
    # Adaptive overlap: `overlap` votes first; while the leading answer leads by fewer than
    # `adaptive_margin` votes, one more vote at a time up to `overlap_max`; still split there:
    # ambiguous. Null (or equal to overlap): fixed overlap.
    overlap_max = models.PositiveSmallIntegerField(null=True, blank=True)
    adaptive_margin = models.PositiveSmallIntegerField(default=2, db_default=2)
    review_queue = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_queues",
        help_text="Where disputed pairs go to be settled (a review queue).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="queue_overlap_positive"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="queue_lease_min"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=0.5), name="queue_gold_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(overlap_max__isnull=True) | Q(overlap_max__gte=F("overlap")),
                name="queue_overlap_max_above_min",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Pair(models.Model):
    class Kind(models.TextChoices):
        SAME_PROMPT = "same_prompt", "same prompt"
        COUNTERFACTUAL = "counterfactual", "counterfactual (original vs perturbed)"

    # Indexed by pair_unique_per_queue (queue first): a separate index would only be written.
    queue = models.ForeignKey(
        LabelingQueue, on_delete=models.CASCADE, related_name="pairs", db_index=False
    )
    # Stored with candidate_a_id < candidate_b_id so {a, b} has one row per queue.
    candidate_a = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    candidate_b = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The prompt judged against: for counterfactual pairs the ORIGINAL prompt.
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    intended_winner = models.ForeignKey(
        Candidate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # pair_intended_winner_idx: only the pairs that have one
    )

    class GoldSource(models.TextChoices):
        NONE = "", "not gold"
        PROCEDURAL = "procedural", "procedural render, spatial truth checked by the renderer"
        CONFIRMED = "confirmed", "counterfactual pair confirmed by a lead"
        LEAD = "lead", "marked by a lead"
        PROPOSED = "proposed", "proposed: waits for a lead's confirmation"

    class Resolution(models.TextChoices):
        OPEN = "", "collecting votes"
        CONFIDENT = "confident", "confident"
        AMBIGUOUS = "ambiguous", "ambiguous (split at the maximum votes)"

    class Review(models.TextChoices):
        NONE = "", "not disputed"
        PENDING = "pending", "in review"
        SETTLED = "settled", "settled"

    # A gold pair's answer is known (gold_winner): it scores annotators, is served to each
    # annotator at most once at the queue's gold rate, and never counts towards an overlap
    # (its judgments_needed is GOLD_CAPACITY, so everyone may answer it).
    is_gold = models.BooleanField(
        default=False, help_text="Answer known; used to score annotators."
    )
    gold_source = models.CharField(
        max_length=16, choices=GoldSource.choices, blank=True, default="", db_default=""
    )
    gold_winner = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gold_explanation = models.CharField(max_length=500, blank=True, default="", db_default="")
    # A gold pair's random place in its queue's pool: NEXT draws a gold pair by walking
    # pair_gold_idx from a random key, so the draw is uniform and reads a few entries.
    gold_key = models.FloatField(null=True, blank=True)
    resolution = models.CharField(
        max_length=16, choices=Resolution.choices, blank=True, default="", db_default=""
    )
    review = models.CharField(
        max_length=16, choices=Review.choices, blank=True, default="", db_default=""
    )
    # Settled with a clear human majority against the intended winner (services/quality.py).
    disputed = models.BooleanField(default=False, db_default=False)
    # On a review queue's copy of a disputed pair: the pair it settles.
    review_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="reviews"
    )
    # The settled answer (from the review queue): preferred by aggregation.
    settled_choice = models.CharField(max_length=16, blank=True, default="", db_default="")
    settled_winner = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    settled_at = models.DateTimeField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0)
    judgments_needed = models.PositiveSmallIntegerField(default=3)
    judgments_count = models.PositiveSmallIntegerField(default=0)
    # Active leases: judgments_count + reserved_count never exceeds judgments_needed.
    reserved_count = models.PositiveSmallIntegerField(default=0)
    # Never leased to anyone, so no annotator has judged, skipped or held it: the hot path
    # takes fresh pairs without looking at the annotator's history.
    fresh = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(candidate_a__lt=F("candidate_b")), name="pair_candidates_ordered"
            ),
            models.CheckConstraint(
                condition=Q(judgments_count__lte=F("judgments_needed") - F("reserved_count")),
                name="pair_leases_within_overlap",
            ),
            models.UniqueConstraint(
                fields=["queue", "candidate_a", "candidate_b"], name="pair_unique_per_queue"
            ),
            models.CheckConstraint(
                condition=Q(judgments_count__lte=F("judgments_needed")),
                name="pair_judgments_within_overlap",
            ),
            models.CheckConstraint(
                condition=Q(judgments_needed__gte=1), name="pair_needs_positive"
            ),
            models.CheckConstraint(
                condition=Q(intended_winner__isnull=True)
                | Q(intended_winner=F("candidate_a"))
                | Q(intended_winner=F("candidate_b")),
                name="pair_intended_winner_in_pair",
            ),
            models.CheckConstraint(
                condition=~Q(kind="counterfactual") | Q(intended_winner__isnull=False),
                name="pair_counterfactual_has_winner",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False)
                | (
                    Q(gold_winner__isnull=False)
                    & (Q(gold_winner=F("candidate_a")) | Q(gold_winner=F("candidate_b")))
                ),
                name="pair_gold_has_winner_in_pair",
            ),
            models.CheckConstraint(
                condition=Q(settled_winner__isnull=True)
                | Q(settled_winner=F("candidate_a"))
                | Q(settled_winner=F("candidate_b")),
                name="pair_settled_winner_in_pair",
            ),
        ]
        indexes = [
            # The assignment hot path (annotation/services/assignment.py) reads two index
            # ranges in serving order: pairs never leased, and pairs started and still open
            # (a free slot left once leases are counted). Both predicates match its SQL.
            models.Index(
                F("queue"),
                F("priority").desc(),
                F("id"),
                name="pair_fresh_order_idx",
                condition=Q(fresh=True) & Q(is_gold=False),
            ),
            models.Index(
                F("queue"),
                F("priority").desc(),
                F("judgments_count").desc(),
                F("id"),
                name="pair_open_order_idx",
                condition=Q(fresh=False)
                & Q(is_gold=False)
                & Q(judgments_count__lt=F("judgments_needed") - F("reserved_count")),
            ),
            # The queue's gold pairs, drawn from by NEXT at the gold rate.
            models.Index(
                fields=["queue", "gold_key"], name="pair_gold_idx", condition=Q(is_gold=True)
            ),
            # Pairs in need of the lead's eye (dashboard drill-down).
            models.Index(
                fields=["queue", "resolution"],
                name="pair_resolution_idx",
                condition=~Q(resolution="") | ~Q(review=""),
            ),
            models.Index(
                fields=["intended_winner"],
                name="pair_intended_winner_idx",
                condition=Q(intended_winner__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.candidate_a_id} vs {self.candidate_b_id})"

    @property
    def is_complete(self) -> bool:
        return self.judgments_count >= self.judgments_needed


class Assignment(models.Model):
    """A lease of a pair to an annotator; also where the presentation order is fixed."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        SUBMITTED = "submitted", "submitted"
        RELEASED = "released", "released"
        EXPIRED = "expired", "expired"

    # Indexed by the unique (pair, annotator) constraint and the partial held-leases index
    # below: separate indexes would only add writes to every lease.
    pair = models.ForeignKey(
        Pair, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
    )
    left_candidate = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "annotator"], name="assignment_unique_per_annotator"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("leased_at")), name="assignment_expiry_after_lease"
            ),
        ]
        indexes = [
            # An annotator's live leases (held pairs, heartbeats). Partial on purpose: a full
            # (annotator, ...) index let the generic plan of `next`'s "never a pair you judged"
            # probe walk the annotator's whole history instead of the unique (pair, annotator)
            # index, so `next` slowed down as a session went on (bench/labeling/RESULTS.md),
            # and finished leases leave it instead of adding an entry per answer. Deleting a
            # user scans the table: rare, and users with judgments are protected anyway.
            models.Index(
                fields=["annotator"], name="assignment_held_idx", condition=Q(status="active")
            ),
            models.Index(
                fields=["pair", "expires_at"],
                name="assignment_active_idx",
                condition=Q(status="active"),
            ),
            # Expired leases are found from the oldest expiry, whatever the table's size.
            models.Index(
                fields=["expires_at"],
                name="assignment_expiry_idx",
                condition=Q(status="active"),
            ),
        ]

    def __str__(self) -> str:
        return f"lease of pair {self.pair_id} to {self.annotator_id}"


class Judgment(models.Model):
    class Choice(models.TextChoices):
        LEFT = "left", "left"
        RIGHT = "right", "right"
        TIE = "tie", "tie"
        BOTH_WRONG = "both_wrong", "both wrong"
        SKIP = "skip", "skip"

    # Indexed by judgment_unique_per_annotator (pair first) and judgment_annotator_time_idx.
    pair = models.ForeignKey(
        Pair, on_delete=models.PROTECT, related_name="judgments", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="judgments",
        db_index=False,
    )
    client_submission_id = models.UUIDField(unique=True)
    left_candidate = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    # The choice mapped through the presentation order; null unless left/right.
    winner = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason_tags = models.JSONField(default=list, blank=True)
    # Answers to the queue's other criteria: {"<criterion name>": "left"|"right"|"tie"|...},
    # each side as shown (left_candidate maps it to a candidate, as for `choice`).
    criteria_choices = models.JSONField(
        default=dict, blank=True, db_default=models.Value({}, output_field=models.JSONField())
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "annotator"], name="judgment_unique_per_annotator"
            ),
            models.CheckConstraint(
                condition=(Q(choice__in=["left", "right"]) & Q(winner__isnull=False))
                | (~Q(choice__in=["left", "right"]) & Q(winner__isnull=True)),
                name="judgment_winner_matches_choice",
            ),
            models.CheckConstraint(
                condition=Q(choice__in=["left", "right", "tie", "both_wrong", "skip"]),
                name="judgment_choice_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="judgment_annotator_time_idx"),
            # Time ranges of an append-only table (the lead's hourly counts, a dataset's
            # judged_after): a BRIN index, which the planner never prefers to the annotator's
            # own index for "this annotator's judgments today", even when the statistics are
            # older than today's judgments (a btree on created_at then won and read all of them).
            BrinIndex(fields=["created_at"], name="judgment_time_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} on pair {self.pair_id}: {self.choice}"


class AnnotatorQueueState(models.Model):
    """An annotator's standing in one queue: their place in the stream (for gold interleaving),
    gold answers, qualification and pause. Written by NEXT (served counters, when the queue
    uses gold) and by the quality services (gold answers, pause, resume)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        QUALIFYING = "qualifying", "qualifying (gold pairs only)"
        PAUSED = "paused", "paused"
        DISQUALIFIED = "disqualified", "failed qualification"

    # The standings in which NEXT serves nothing (services/quality.py, selectors.py).
    STOPPED = (Status.PAUSED, Status.DISQUALIFIED)

    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_states"
    )
    queue = models.ForeignKey(
        LabelingQueue, on_delete=models.CASCADE, related_name="annotator_states", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Items newly leased to this annotator in this queue, gold ones among them, and the stream
    # position (1-based) of the next gold item.
    served = models.PositiveIntegerField(default=0)
    gold_served = models.PositiveIntegerField(default=0)
    next_gold_at = models.PositiveIntegerField(null=True, blank=True)
    gold_answers = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    # Gold answers since the last resume: the auto-pause's evidence (a resumed annotator is
    # judged on what they do next, not paused again by the answers that paused them).
    window_answers = models.PositiveIntegerField(default=0)
    window_correct = models.PositiveIntegerField(default=0)
    # From gold: the posterior mean accuracy (correct + 1) / (answers + 2); null before any.
    trust = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["queue", "annotator"]
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "annotator"], name="annotatorqueuestate_unique"
            ),
            models.CheckConstraint(
                condition=Q(gold_correct__lte=F("gold_answers")),
                name="annotatorqueuestate_correct_within_answers",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} in queue {self.queue_id}: {self.status}"


class UndoneJudgment(models.Model):
    """A judgment its annotator took back while the lease held (kept for audit).

    Its submission id stays spent: a late retry of the undone submit gets a 409, never a
    second judgment.
    """

    client_submission_id = models.UUIDField(unique=True)
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    choice = models.CharField(max_length=16, choices=Judgment.Choice.choices)
    judged_at = models.DateTimeField()
    undone_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"undone {self.choice} by {self.annotator_id} on pair {self.pair_id}"


class ImageThumbnail(models.Model):
    """The screen-sized WebP of a candidate image, made once per source content hash."""

    content_sha256 = models.CharField(max_length=64, unique=True)
    storage_key = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.storage_key


class InstructionImage(models.Model):
    """An example image that a queue's instructions show (markdown: ![caption](example:NAME))."""

    queue = models.ForeignKey(
        LabelingQueue, on_delete=models.CASCADE, related_name="instruction_images"
    )
    name = models.SlugField(max_length=64)
    image = models.ImageField(upload_to="instructions/")
    caption = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["queue", "name"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "name"], name="instructionimage_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.queue}: {self.name}"


class PairBuild(models.Model):
    """One request to build pairs into a queue from a campaign's candidates (a `cpu` task)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    queue = models.ForeignKey(LabelingQueue, on_delete=models.CASCADE, related_name="builds")
    campaign = models.ForeignKey(
        "generation_workers.Campaign", on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Pair.Kind.choices)
    # Validated options of annotation.services.pairs.pairs_build (JSON, small).
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    pairs_created = models.PositiveIntegerField(default=0)
    pairs_existing = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The run that owns the build while it runs, and the build's last sign of life (queued,
    # claimed, each batch of pairs): a second delivery leaves a build whose owner beat within
    # RECOVERY_STALE_SECONDS alone, and takes over a stale one.
    run_token = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} pairs from {self.campaign_id} into {self.queue_id}"
