"""Admin pages of the labeling stage.

Leads manage queues here: create them (instructions in markdown with example images, overlap,
lease, prefetch, who may label), pause and resume them, and build pairs into them (a build
runs on the `cpu` workers). Forms validate and save through the same services as the API
(a queue nobody may label is refused on its `allowed_groups` field). Lists never count a
whole table (show_full_result_count off, no per-row counts).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import (
    AnnotatorProfile,
    Assignment,
    ImageThumbnail,
    InstructionImage,
    Judgment,
    LabelingQueue,
    Pair,
    PairBuild,
    UndoneJudgment,
)
from annotation.services import quality
from annotation.services.pairs import pair_build_options_check, pair_build_start
from annotation.services.queues import (
    EVERY_ANNOTATOR,
    QUALITY_DEFAULTS,
    labeling_queue_audience_check,
    labeling_queue_create,
    labeling_queue_pause,
    labeling_queue_quality_check,
    labeling_queue_resume,
    labeling_queue_settings_check,
    labeling_queue_update,
)
from config.errors import DomainError, ValidationFailed
from config.permissions import RoleMatrixAdmin, RoleMatrixInline


def _form_error(form: forms.Form, exc: DomainError) -> None:
    field = (exc.field or "").removeprefix("quality.").split(".", 1)[0].split("[", 1)[0]
    form.add_error(field if field in form.fields else None, exc.detail)


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["user", "quality_score", "daily_target", "created_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


class InstructionImageInline(RoleMatrixInline, admin.TabularInline):
    model = InstructionImage
    extra = 0
    fields = ["name", "image", "caption"]


class LabelingQueueForm(forms.ModelForm):
    class Meta:
        model = LabelingQueue
        fields = [
            "name",
            "instructions",
            "overlap",
            "lease_seconds",
            "prefetch",
            "status",
            "allowed_groups",
            "allowed_users",
            *QUALITY_DEFAULTS,
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and "allowed_groups" in self.fields:
            # as the service and the API: a new queue is open to every annotator unless told
            self.initial.setdefault(
                "allowed_groups", list(Group.objects.filter(name__in=EVERY_ANNOTATOR))
            )
        for key in QUALITY_DEFAULTS:
            if key in self.fields:
                self.fields[key].required = False

    def clean(self):
        cleaned = super().clean()
        for key, default in QUALITY_DEFAULTS.items():
            # quality settings left blank keep their value (or the default on a new queue)
            if cleaned.get(key) in (None, "") and default is not None and key in self.fields:
                cleaned[key] = getattr(self.instance, key) if self.instance.pk else default
        try:
            labeling_queue_settings_check(
                overlap=cleaned.get("overlap") or 0,
                lease_seconds=cleaned.get("lease_seconds") or 0,
                prefetch=cleaned.get("prefetch") or 0,
            )
        except DomainError as exc:
            _form_error(self, exc)
        try:
            labeling_queue_quality_check(
                {key: cleaned[key] for key in QUALITY_DEFAULTS if key in cleaned},
                overlap=cleaned.get("overlap") or 1,
                queue_id=self.instance.pk,
            )
        except DomainError as exc:
            _form_error(self, exc)
        if "allowed_groups" in cleaned and "allowed_users" in cleaned:
            try:
                labeling_queue_audience_check(
                    allowed_users=cleaned["allowed_users"],
                    allowed_group_names=[group.name for group in cleaned["allowed_groups"]],
                )
            except DomainError as exc:
                _form_error(self, exc)
        return cleaned


@admin.register(LabelingQueue)
class LabelingQueueAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    form = LabelingQueueForm
    list_display = ["name", "status", "overlap", "lease_seconds", "prefetch", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    filter_horizontal = ["allowed_groups", "allowed_users"]
    readonly_fields = ["created_by", "created_at"]
    inlines = [InstructionImageInline]
    actions = ["pause", "resume"]

    def save_model(self, request, obj, form, change):
        """Through the services, as the API: create or change, then pause or resume."""
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "instructions": data["instructions"],
            "overlap": data["overlap"],
            "lease_seconds": data["lease_seconds"],
            "prefetch": data["prefetch"],
            "allowed_users": list(data["allowed_users"]),
            "allowed_group_names": [group.name for group in data["allowed_groups"]],
            "quality": {key: data[key] for key in QUALITY_DEFAULTS if key in data},
        }
        if change:
            queue = labeling_queue_update(queue_id=obj.pk, **fields)
        else:
            queue = labeling_queue_create(**fields, created_by=request.user)
        if data["status"] != queue.status:
            set_status = (
                labeling_queue_pause
                if data["status"] == LabelingQueue.Status.PAUSED
                else labeling_queue_resume
            )
            set_status(queue_id=queue.pk)
        # the admin goes on with this object (its inlines, the log entry, the redirect)
        obj.pk = queue.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        # who may label the queue was set by the service; only the example images are left
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description="Pause the selected queues", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        for queue in queryset:
            labeling_queue_pause(queue_id=queue.pk)
        self.message_user(request, f"Paused {queryset.count()} queue(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected queues", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        for queue in queryset:
            labeling_queue_resume(queue_id=queue.pk)
        self.message_user(request, f"Resumed {queryset.count()} queue(s).", messages.SUCCESS)


class PairBuildForm(forms.ModelForm):
    class Meta:
        model = PairBuild
        fields = ["queue", "campaign", "kind", "options"]
        help_texts = {
            "options": "JSON: sample_per_prompt, prefer_across_configs, counterfactual_match "
            "(config_seed | config), priority, judgments_needed, seed, make_thumbnails."
        }

    def clean(self):
        cleaned = super().clean()
        if "kind" in cleaned:
            try:
                cleaned["options"] = pair_build_options_check(
                    kind=cleaned["kind"], options=cleaned.get("options") or {}
                )
            except DomainError as exc:
                _form_error(self, exc)
        return cleaned


@admin.register(PairBuild)
class PairBuildAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    """Adding a build queues it on the `cpu` workers; a build is never edited afterwards."""

    form = PairBuildForm
    list_display = [
        "id", "queue", "campaign", "kind", "status", "pairs_created", "pairs_existing",
        "created_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "kind"]
    list_select_related = ["queue", "campaign"]
    raw_id_fields = ["campaign"]
    readonly_fields = [
        "status", "pairs_created", "pairs_existing", "error", "created_by", "created_at",
        "started_at", "finished_at",
    ]  # fmt: skip

    def save_model(self, request, obj, form, change):
        build = pair_build_start(
            queue_id=obj.queue_id,
            campaign_id=obj.campaign_id,
            kind=obj.kind,
            options=form.cleaned_data["options"],
            created_by=request.user,
        )
        obj.pk = build.pk
        obj._state.adding = False
        obj._state.db = build._state.db


@admin.register(Pair)
class PairAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "id", "queue", "kind", "candidate_a_id", "candidate_b_id", "priority",
        "judgments_count", "reserved_count", "judgments_needed", "is_gold",
    ]  # fmt: skip
    list_filter = ["kind", "is_gold", "gold_source", "resolution", "review", "queue"]
    list_select_related = ["queue"]
    raw_id_fields = ["candidate_a", "candidate_b", "intended_winner", "prompt"]
    # Gold, votes and review change only through the quality services (the actions below).
    readonly_fields = [
        "judgments_count", "reserved_count", "fresh", "created_at", "is_gold", "gold_source",
        "gold_winner", "resolution", "review", "review_of", "settled_choice", "settled_winner",
        "settled_by", "settled_at",
    ]  # fmt: skip
    show_full_result_count = False
    actions = ["gold_from_intended", "gold_confirm", "gold_unmark", "review_send"]

    def _each(self, request: HttpRequest, queryset: QuerySet, action, done: str) -> None:
        count, errors = 0, []
        for pair in queryset.order_by("pk"):
            try:
                action(pair)
                count += 1
            except DomainError as exc:
                errors.append(f"pair {pair.pk}: {exc.detail}")
        if count:
            self.message_user(request, f"{done} {count} pair(s).", messages.SUCCESS)
        for error in errors[:10]:
            self.message_user(request, error, messages.ERROR)

    @admin.action(
        description="Make gold, the intended winner the answer (counterfactual pairs)",
        permissions=["change"],
    )
    def gold_from_intended(self, request: HttpRequest, queryset: QuerySet) -> None:
        def mark(pair: Pair) -> None:
            if pair.intended_winner_id is None:
                raise ValidationFailed("it has no intended winner", field="winner")
            quality.pair_gold_mark(
                pair_id=pair.pk, winner_id=pair.intended_winner_id, by=request.user
            )

        self._each(request, queryset, mark, "Made gold:")

    @admin.action(description="Confirm proposed gold pairs", permissions=["change"])
    def gold_confirm(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            lambda pair: quality.pairs_gold_confirm(
                queue_id=pair.queue_id, pair_ids=[pair.pk], by=request.user
            ),
            "Confirmed as gold:",
        )

    @admin.action(description="No longer gold", permissions=["change"])
    def gold_unmark(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            lambda pair: quality.pair_gold_unmark(pair_id=pair.pk, by=request.user),
            "Unmarked:",
        )

    @admin.action(description="Send to the queue's review queue", permissions=["change"])
    def review_send(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            lambda pair: quality.pair_review_send(pair_id=pair.pk, by=request.user),
            "Sent to review:",
        )


@admin.register(Assignment)
class AssignmentAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["id", "pair_id", "annotator", "status", "leased_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["annotator__username"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator", "left_candidate"]
    show_full_result_count = False


@admin.register(Judgment)
class JudgmentAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["id", "pair_id", "annotator", "choice", "duration_ms", "created_at"]
    list_filter = ["choice"]
    search_fields = ["annotator__username", "client_submission_id"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator", "left_candidate", "winner"]
    show_full_result_count = False


@admin.register(UndoneJudgment)
class UndoneJudgmentAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["id", "pair_id", "annotator", "choice", "judged_at", "undone_at"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator"]
    show_full_result_count = False


@admin.register(ImageThumbnail)
class ImageThumbnailAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["content_sha256", "storage_key", "width", "height", "created_at"]
    search_fields = ["content_sha256"]
    show_full_result_count = False
