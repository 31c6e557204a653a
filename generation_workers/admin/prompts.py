"""Admin pages of vocabularies, prompt sets and prompts."""

from django.contrib import admin

from generation_workers.models import Prompt, PromptSet, Vocabulary


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
