from django.contrib import admin

from generation_workers.models import (
    Campaign,
    Candidate,
    GeneratorConfig,
    Prompt,
    PromptSet,
    Vocabulary,
)


@admin.register(Vocabulary)
class VocabularyAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "version",
        "source",
        "status",
        "prompt_count",
        "locked_at",
        "created_at",
    ]
    list_filter = ["source", "status"]
    search_fields = ["name"]
    readonly_fields = [
        "spec_hash",
        "prompt_count",
        "locked_at",
        "created_by",
        "created_at",
        "error",
    ]

    def get_readonly_fields(self, request, obj=None):
        # A set a campaign has used is immutable.
        if obj is not None and obj.is_locked:
            return [f.name for f in obj._meta.fields]
        return self.readonly_fields


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "text_short", "prompt_set", "tier", "split", "perturbation_type"]
    list_filter = ["split", "tier", "perturbation_type", "prompt_set"]
    search_fields = ["text", "group_key"]
    list_select_related = ["prompt_set"]
    raw_id_fields = ["parent", "prompt_set"]
    show_full_result_count = False

    @admin.display(description="text")
    def text_short(self, obj: Prompt) -> str:
        return obj.text[:100]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.prompt_set.is_locked:
            return False
        return super().has_change_permission(request, obj)


@admin.register(GeneratorConfig)
class GeneratorConfigAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "backend",
        "model_path",
        "width",
        "height",
        "batch_size",
        "check_status",
    ]
    list_filter = ["backend", "check_status"]
    search_fields = ["name", "model_path"]
    readonly_fields = [
        "model_revision",
        "check_status",
        "check_message",
        "checked_at",
        "created_at",
    ]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "prompt_set", "status", "seeds_per_prompt", "total_items", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    list_select_related = ["prompt_set"]
    filter_horizontal = ["configs"]
    readonly_fields = ["total_items", "started_at", "finished_at", "created_by", "created_at"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "prompt_id", "config", "seed", "status", "duration_ms"]
    list_filter = ["status", "config", "campaign"]
    search_fields = ["storage_key", "content_sha256"]
    list_select_related = ["campaign", "config"]
    raw_id_fields = ["prompt", "campaign"]
    show_full_result_count = False
    readonly_fields = [
        "params_hash", "storage_key", "content_sha256", "width", "height", "duration_ms",
        "generation_params", "error", "attempts", "created_at", "finished_at",
    ]  # fmt: skip

    def has_change_permission(self, request, obj=None):
        # Candidates are written by workers only; the admin shows them.
        return False
