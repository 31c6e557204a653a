from django.contrib import admin

from annotation.models import AnnotatorProfile, Assignment, Judgment, LabelingQueue, Pair


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "quality_score", "daily_target", "created_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(LabelingQueue)
class LabelingQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "overlap", "lease_seconds", "prefetch", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    filter_horizontal = ["allowed_groups", "allowed_users"]
    readonly_fields = ["created_by", "created_at"]


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    list_display = [
        "id", "queue", "kind", "candidate_a_id", "candidate_b_id", "priority",
        "judgments_count", "judgments_needed", "is_gold",
    ]  # fmt: skip
    list_filter = ["kind", "is_gold", "queue"]
    list_select_related = ["queue"]
    raw_id_fields = ["candidate_a", "candidate_b", "intended_winner", "prompt"]
    readonly_fields = ["judgments_count", "created_at"]
    show_full_result_count = False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "pair_id", "annotator", "status", "leased_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["annotator__username"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator", "left_candidate"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "pair_id", "annotator", "choice", "duration_ms", "created_at"]
    list_filter = ["choice"]
    search_fields = ["annotator__username", "client_submission_id"]
    list_select_related = ["annotator"]
    raw_id_fields = ["pair", "annotator", "left_candidate", "winner"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        # A judgment is what an annotator said; nobody edits it afterwards.
        return False

    def has_add_permission(self, request):
        return False
