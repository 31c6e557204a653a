"""Dataset versions, exports, training launchers and runs, and reward models.

Invariants held by the database here (design.md):
- a frozen version has its content hash and freeze time; versions are numbered per dataset;
- a record appears once per (version, pair);
- the same (version, config) trains once unless forced (unique attempt number);
- at most one reward model per name is promoted.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models import Pair
from generation_workers.models import Candidate, Prompt, Split


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        FREEZING = "freezing", "freezing"
        FROZEN = "frozen", "frozen"
        FAILED = "failed", "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    filter_spec = models.JSONField(default=dict, blank=True)
    split_spec = models.JSONField(default=dict, blank=True)
    aggregator = models.CharField(max_length=64, default="majority")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    content_hash = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    record_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    # The freeze run that owns the version while it is freezing. Its last sign of life (the
    # request, the claim, each batch of records): a second delivery leaves a version whose
    # owner beat within RECOVERY_STALE_SECONDS alone, and takes over a stale one.
    freeze_token = models.UUIDField(null=True, blank=True, editable=False)
    freeze_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "number"], name="datasetversion_unique_number"
            ),
            models.CheckConstraint(
                condition=~Q(status="frozen") | (Q(frozen_at__isnull=False) & ~Q(content_hash="")),
                name="datasetversion_frozen_has_hash",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def is_frozen(self) -> bool:
        return self.status == self.Status.FROZEN


class DatasetRecord(models.Model):
    """One pair's aggregated label inside a version; never updated once the version is frozen.

    The record is a snapshot: `canonical` holds the whole canonical JSON line (prompt text and
    structure, candidates, label, votes, split, lineage), so exports never read the live
    pairs, prompts or judgments again. `position` is the record's place in the canonical order.
    On PostgreSQL a trigger refuses any insert, update or delete of a frozen version's records.
    """

    class Label(models.TextChoices):
        A = "a", "candidate a preferred"
        B = "b", "candidate b preferred"
        TIE = "tie", "tie"
        BOTH_WRONG = "both_wrong", "both wrong"

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="records")
    pair = models.ForeignKey(Pair, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=8, choices=Split.choices)
    label = models.CharField(max_length=16, choices=Label.choices)
    votes = models.JSONField(default=dict)
    agreement = models.FloatField()
    intended_winner = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    position = models.PositiveIntegerField(default=0)
    prompt = models.ForeignKey(
        Prompt, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    group_key = models.CharField(max_length=64, blank=True, default="")
    image_a_key = models.CharField(max_length=255, blank=True, default="")
    image_b_key = models.CharField(max_length=255, blank=True, default="")
    canonical = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["version", "pair"]
        constraints = [
            models.UniqueConstraint(fields=["version", "pair"], name="datasetrecord_unique_pair"),
            models.UniqueConstraint(
                fields=["version", "position"], name="datasetrecord_unique_position"
            ),
            models.CheckConstraint(
                condition=Q(agreement__gte=0) & Q(agreement__lte=1),
                name="datasetrecord_agreement_range",
            ),
        ]
        indexes = [models.Index(fields=["version", "split"], name="datasetrecord_split_idx")]

    def __str__(self) -> str:
        return f"pair {self.pair_id} in version {self.version_id}: {self.label}"


class DatasetExport(models.Model):
    class Format(models.TextChoices):
        JSONL = "jsonl", "canonical JSONL"
        PARQUET = "parquet", "Pick-a-Pic Parquet"
        HPS = "hps", "HPSv3 JSON"
        WEBDATASET = "webdataset", "WebDataset tar shards"
        OPENRLHF = "openrlhf", "OpenRLHF preference rows"
        ARENA = "arena", "arena battle records"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=16, choices=Format.choices)
    include_images = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    records_done = models.PositiveIntegerField(default=0)
    records_total = models.PositiveIntegerField(default=0)
    artifacts = models.JSONField(default=list, blank=True, help_text="[{key, size, sha256}]")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The run that owns the export while it is running, and the export's last sign of life
    # (requested, claimed, each progress report): a second delivery leaves an export whose
    # owner beat within RECOVERY_STALE_SECONDS alone, and takes over a stale one.
    run_token = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "format", "include_images"], name="datasetexport_unique_format"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.format}"


class TrainingLauncher(models.Model):
    """A command training runs may execute: defined by a superuser only (admin or
    `manage.py training_launchers load`), picked by name in a run's config.

    `argv` is a list of strings whose only placeholders are {dataset_dir}, {output_dir},
    {config_file} and {run_id}; the child's environment is the launcher's minimal one plus
    `environment` (values set here) and `passthrough_env` (names copied from the worker's
    environment), never the worker's secrets. The checks live in
    services/launcher_definitions.py (`training_launcher_clean`).
    """

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    argv = models.JSONField(
        help_text='The command as a list of strings, e.g. ["/opt/rm/train.sh", "--data", '
        '"{dataset_dir}", "--out", "{output_dir}"].'
    )
    environment = models.JSONField(
        default=dict, blank=True, help_text="Variables the command gets: {NAME: value}."
    )
    passthrough_env = models.JSONField(
        default=list,
        blank=True,
        help_text="Names copied from the worker's environment when set there.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled: no new or queued run uses it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # "builtin" is the built-in trainer; "external" names the old free-form command runs.
            models.CheckConstraint(
                condition=~Q(name__in=["builtin", "external"]),
                name="traininglauncher_name_not_reserved",
            )
        ]

    def __str__(self) -> str:
        return self.name


class TrainingRun(models.Model):
    class Launcher(models.TextChoices):
        BUILTIN = "builtin", "built-in trainer (Celery training queue)"
        # The built-in trainer as a Kubernetes Job the training worker submits and follows.
        KUBERNETES = "kubernetes", "built-in trainer as a Kubernetes Job"
        # Runs of the removed free-form command launcher; they stay readable, never run again.
        EXTERNAL = "external", "external command (removed)"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="training_runs"
    )
    config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64)
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="Raised only by a forced restart."
    )
    # "builtin", or the name of the launcher definition the run was started with (copied, so
    # the run stays readable whatever happens to the definition later)
    launcher = models.CharField(max_length=64, default=Launcher.BUILTIN)
    launcher_definition = models.ForeignKey(
        TrainingLauncher, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    summary = models.JSONField(default=dict, blank=True, help_text="Final metrics.")
    artifacts = models.JSONField(default=list, blank=True, help_text="[{name, key, size, sha256}]")
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Asked from the admin, the API or the command; the worker stops the trainer and records
    # `cancelled` (a queued run is cancelled at once).
    cancel_requested = models.BooleanField(default=False)
    # The execution that owns the run while it runs; only its writes count.
    run_token = models.UUIDField(null=True, blank=True, editable=False)
    worker = models.CharField(max_length=255, blank=True, help_text="host and pid of the run.")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_version", "config_hash", "attempt"],
                name="trainingrun_unique_attempt",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="trainingrun_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running"]) | Q(finished_at__isnull=False),
                name="trainingrun_finished_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="trainingrun_heartbeat_idx")
        ]

    def __str__(self) -> str:
        return f"run {self.pk} on {self.dataset_version}"


class TrainingMetric(models.Model):
    """One point of a curve: a loss per step, or a per-epoch validation figure."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=128, help_text="e.g. train/loss, val/accuracy/left_of")
    step = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField(null=True, blank=True)
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "name", "step"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "name", "step"], name="trainingmetric_unique_point"
            )
        ]
        # the admin's live charts poll for the points after the last id they have
        indexes = [models.Index(fields=["run", "id"], name="trainingmetric_run_id_idx")]

    def __str__(self) -> str:
        return f"{self.name}@{self.step}={self.value:g}"


class RewardModel(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "candidate"
        PROMOTED = "promoted", "promoted"
        ARCHIVED = "archived", "archived"

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="reward_model"
    )
    dataset_version = models.ForeignKey(
        DatasetVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reward_models",
    )
    artifact_key = models.CharField(max_length=512)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="rewardmodel_unique_version"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(status="promoted"), name="rewardmodel_one_promoted"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
