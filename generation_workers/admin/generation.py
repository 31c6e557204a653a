"""Admin pages of generator configs, campaigns and candidates."""

from django.contrib import admin

from generation_workers.models import Campaign, Candidate, GeneratorConfig


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
