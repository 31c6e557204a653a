from django.contrib import admin

from training_bridge.models import (
    Dataset,
    DatasetExport,
    DatasetRecord,
    DatasetVersion,
    RewardModel,
    TrainingMetric,
    TrainingRun,
)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "record_count", "content_hash", "frozen_at"]
    list_filter = ["status", "dataset"]
    search_fields = ["dataset__name", "content_hash"]
    list_select_related = ["dataset"]
    readonly_fields = [
        "content_hash",
        "manifest",
        "record_count",
        "frozen_at",
        "created_at",
        "error",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return [f.name for f in obj._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(DatasetRecord)
class DatasetRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "pair_id", "split", "label", "agreement"]
    list_filter = ["split", "label"]
    list_select_related = ["version__dataset"]
    raw_id_fields = ["version", "pair", "intended_winner"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "version",
        "format",
        "include_images",
        "status",
        "records_done",
        "finished_at",
    ]
    list_filter = ["format", "status"]
    list_select_related = ["version__dataset"]
    readonly_fields = ["status", "records_done", "artifacts", "error", "created_at", "finished_at"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "dataset_version",
        "launcher",
        "status",
        "attempt",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "launcher"]
    list_select_related = ["dataset_version__dataset"]
    readonly_fields = [
        "config_hash", "attempt", "summary", "artifacts", "error", "log_tail", "heartbeat_at",
        "created_by", "created_at", "started_at", "finished_at",
    ]  # fmt: skip


@admin.register(TrainingMetric)
class TrainingMetricAdmin(admin.ModelAdmin):
    list_display = ["run_id", "name", "step", "epoch", "value"]
    list_filter = ["name"]
    raw_id_fields = ["run"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "status", "dataset_version", "promoted_at", "created_at"]
    list_filter = ["status", "name"]
    search_fields = ["name"]
    list_select_related = ["dataset_version__dataset", "run"]
    readonly_fields = ["promoted_at", "created_at"]
