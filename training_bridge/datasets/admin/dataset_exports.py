"""Admin pages of dataset records (read-only) and exports (progress, downloads, export again).

Every write goes through the dataset services, exactly as the API and the `dataset` management
command do.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from config.permissions import RoleMatrixAdmin
from training_bridge.datasets.apis.serializers import artifact_entries
from training_bridge.datasets.services.exports import dataset_export_request, export_folder
from training_bridge.models import DatasetExport, DatasetRecord


def report_error(modeladmin: admin.ModelAdmin, request: HttpRequest, exc: DomainError) -> None:
    modeladmin.message_user(request, str(exc), level=messages.ERROR)


@admin.register(DatasetRecord)
class DatasetRecordAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["id", "version", "position", "pair_id", "split", "label", "agreement"]
    list_filter = ["split", "label"]
    list_select_related = ["version__dataset"]
    raw_id_fields = ["version", "pair", "intended_winner", "prompt"]
    show_full_result_count = False


@admin.register(DatasetExport)
class DatasetExportAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "id", "version", "format", "include_images", "status", "progress", "finished_at",
    ]  # fmt: skip
    list_filter = ["format", "status", "include_images"]
    list_select_related = ["version__dataset"]
    actions = ["export_again"]
    fields = [
        "version", "format", "include_images", "status", "progress", "records_done",
        "records_total", "downloads", "error", "created_at", "started_at", "finished_at",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="progress")
    def progress(self, obj: DatasetExport) -> str:
        done = obj.records_total if obj.status == DatasetExport.Status.DONE else obj.records_done
        return format_html(
            '<progress value="{}" max="{}"></progress> {} / {}',
            done,
            max(obj.records_total, 1),
            done,
            obj.records_total,
        )

    @admin.display(description="files")
    def downloads(self, obj: DatasetExport) -> str:
        if obj.status != DatasetExport.Status.DONE:
            return "-"
        files = artifact_entries(
            obj.version_id,
            export_folder(format=obj.format, include_images=obj.include_images),
            obj.artifacts,
        )
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({} bytes, sha256 {})</li>',
                ((f["download_url"], f["name"], f["size"], f["sha256"]) for f in files),
            ),
        )

    def save_model(self, request, obj, form, change):
        """Every field is read-only: exports change only through the export services."""

    @admin.action(description="Export again", permissions=["change"])
    def export_again(self, request, queryset):
        for export in queryset:
            try:
                dataset_export_request(
                    version_id=export.version_id,
                    format=export.format,
                    include_images=export.include_images,
                    force=True,
                )
            except DomainError as exc:
                report_error(self, request, exc)
        self.message_user(request, "Exports queued again.")
