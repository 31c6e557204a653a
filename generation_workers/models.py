"""Prompts, generator configs, campaigns and the candidate images they produce.

Invariants held by the database here (design.md):
- a candidate exists once per generation key (prompt, config, seed, params hash);
- a prompt's text appears once per prompt set;
- a frozen prompt set's id is what campaigns point at (PROTECT: it cannot be deleted).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Split(models.TextChoices):
    TRAIN = "train", "train"
    VAL = "val", "val"
    TEST = "test", "test"


class Vocabulary(models.Model):
    """A named object/attribute vocabulary a prompt-set spec can refer to."""

    name = models.SlugField(max_length=100, unique=True)
    object_names = models.JSONField(help_text="List of object names, or {name: {plural, article}}.")
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "vocabularies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptSet(models.Model):
    class Source(models.TextChoices):
        TEMPLATE = "template", "built from a spec"
        IMPORT = "import", "imported JSONL"

    class Status(models.TextChoices):
        BUILDING = "building", "building"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=16, choices=Source.choices)
    spec = models.JSONField(default=dict, blank=True)
    spec_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    error = models.TextField(blank=True)
    prompt_count = models.PositiveIntegerField(default=0)
    # Set when the first campaign uses the set; from then on its prompts never change.
    locked_at = models.DateTimeField(null=True, blank=True)
    # When its build task was last published (a large set is built on the cpu queue); the
    # recovery sweep publishes it again if it is still building, unclaimed, long after.
    build_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], name="promptset_unique_name_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None


class Prompt(models.Model):
    class Perturbation(models.TextChoices):
        NONE = "", "original"
        SWAP = "swap", "swap two objects"
        REPLACE = "replace", "replace a relation"
        FLIP = "flip", "flip a direction"
        MULTI = "multi", "2-3 changes"

    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    normalized_text = models.TextField()
    structure = models.JSONField(help_text="objects, relations and scene (the canonical spec).")
    tier = models.PositiveSmallIntegerField(
        default=1, help_text="1: one relation; 2: 2-3; 3: scene"
    )
    template = models.CharField(max_length=64, blank=True)
    # '|left_of|above|' and '|cat|dog|': one name is found with contains='|name|'.
    relation_keys = models.CharField(max_length=512, blank=True)
    object_keys = models.CharField(max_length=1024, blank=True)
    group_key = models.CharField(
        max_length=64, help_text="Shared by a prompt and its perturbations."
    )
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.TRAIN)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="perturbations"
    )
    perturbation_type = models.CharField(
        max_length=16, choices=Perturbation.choices, default=Perturbation.NONE, blank=True
    )
    perturbation = models.JSONField(default=dict, blank=True, help_text="What changed.")
    num_perturbations = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt_set", "normalized_text"], name="prompt_unique_text_per_set"
            ),
            models.CheckConstraint(
                condition=(Q(parent__isnull=True) & Q(perturbation_type=""))
                | (
                    Q(parent__isnull=False) & ~Q(perturbation_type="") & Q(num_perturbations__gte=1)
                ),
                name="prompt_lineage_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["prompt_set", "split"], name="prompt_set_split_idx"),
            models.Index(fields=["prompt_set", "tier"], name="prompt_set_tier_idx"),
            models.Index(fields=["group_key"], name="prompt_group_idx"),
        ]

    def __str__(self) -> str:
        return self.text[:80]


class GeneratorConfig(models.Model):
    class Backend(models.TextChoices):
        DIFFUSERS = "diffusers", "diffusers (local model folder)"
        PROCEDURAL = "procedural", "procedural renderer"

    class CheckStatus(models.TextChoices):
        UNCHECKED = "unchecked", "unchecked"
        CHECKING = "checking", "checking"
        OK = "ok", "ok"
        FAILED = "failed", "failed"

    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    model_path = models.CharField(max_length=1024, blank=True, help_text="Local diffusers folder.")
    model_revision = models.CharField(max_length=64, blank=True, help_text="Hash of the folder.")
    pipeline_class = models.CharField(max_length=128, blank=True, help_text="Empty: auto.")
    dtype = models.CharField(max_length=16, default="float32")
    device = models.CharField(max_length=32, default="auto")
    scheduler = models.CharField(max_length=128, blank=True, help_text="Override; empty: default.")
    num_inference_steps = models.PositiveSmallIntegerField(default=30)
    guidance_scale = models.FloatField(default=7.5)
    width = models.PositiveIntegerField(default=512)
    height = models.PositiveIntegerField(default=512)
    negative_prompt = models.TextField(blank=True)
    batch_size = models.PositiveSmallIntegerField(default=4)
    extra_args = models.JSONField(default=dict, blank=True)
    image_format = models.CharField(
        max_length=8, choices=[("png", "PNG"), ("webp", "WebP")], default="png"
    )
    queue = models.CharField(
        max_length=64,
        blank=True,
        help_text="Celery queue of its batches; empty: the gpu queue. A queue per config lets "
        "a worker hold one model.",
    )
    check_status = models.CharField(
        max_length=16, choices=CheckStatus.choices, default=CheckStatus.UNCHECKED
    )
    check_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(backend="diffusers") | ~Q(model_path=""),
                name="generatorconfig_diffusers_needs_folder",
            ),
            models.CheckConstraint(
                condition=Q(width__gte=8) & Q(height__gte=8) & Q(batch_size__gte=1),
                name="generatorconfig_sizes_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        RUNNING = "running", "running"
        COMPLETED = "completed", "completed"
        CANCELLED = "cancelled", "cancelled"
        FAILED = "failed", "failed"

    name = models.CharField(max_length=200, unique=True)
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.PROTECT, related_name="campaigns")
    prompt_filter = models.JSONField(default=dict, blank=True)
    configs = models.ManyToManyField(GeneratorConfig, related_name="campaigns")
    seeds_per_prompt = models.PositiveSmallIntegerField(default=1)
    base_seed = models.BigIntegerField(default=0)
    include_perturbations = models.BooleanField(
        default=True, help_text="Render perturbed prompts with the same configs and seeds."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    total_items = models.PositiveIntegerField(default=0)
    # Keys this campaign planned that earlier campaigns had already rendered (not rendered again).
    reused_items = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When its pending items were last published as batches (launch, retry, requeue, the
    # recovery sweep): the sweep publishes them again only if nothing moved since long after.
    dispatched_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(seeds_per_prompt__gte=1), name="campaign_seeds_positive"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(started_at__isnull=False),
                name="campaign_launched_has_start",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Candidate(models.Model):
    """One image for (prompt, config, seed, params): generated once, stored by content hash."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="candidates")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="candidates")
    config = models.ForeignKey(GeneratorConfig, on_delete=models.PROTECT, related_name="candidates")
    seed = models.BigIntegerField()
    params_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Content-addressed: candidates/<sha256[:2]>/<sha256>.<ext>; identical bytes share one key.
    storage_key = models.CharField(max_length=255, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    generation_params = models.JSONField(
        default=dict,
        blank=True,
        help_text="seed, steps, guidance, scheduler, model folder, revision",
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A worker renders an item only while it holds the lease (token + expiry, renewed while it
    # works); a lease that runs out means the worker died and the item is queued again.
    lease_token = models.CharField(max_length=32, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "config", "seed", "params_hash"],
                name="candidate_unique_generation_key",
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | (~Q(storage_key="") & ~Q(content_sha256="")),
                name="candidate_done_has_image",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error=""), name="candidate_failed_has_error"
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | (Q(leased_until__isnull=True) & Q(lease_token="")),
                name="candidate_lease_only_pending",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="candidate_campaign_status_idx"),
            models.Index(fields=["content_sha256"], name="candidate_content_idx"),
            models.Index(
                fields=["leased_until"],
                condition=Q(leased_until__isnull=False),
                name="candidate_leased_idx",
            ),
            models.Index(fields=["campaign", "finished_at"], name="candidate_campaign_done_idx"),
        ]

    def __str__(self) -> str:
        return f"candidate {self.pk} (prompt {self.prompt_id}, seed {self.seed})"
