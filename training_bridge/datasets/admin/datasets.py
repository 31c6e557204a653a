"""Admin pages of datasets and their versions: add a version (specs checked first), freeze,
export, compare, and the version page with its composition charts (inline SVG), export
progress and downloads. Records and exports have theirs in `dataset_exports.py`. Every write
goes through the dataset services, exactly as the API and the `dataset` command do.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.errors import DomainError, ValidationFailed
from config.parsers import JSONFormField
from config.permissions import RoleMatrixAdmin, admin_allows
from training_bridge.datasets.admin.charts import version_charts
from training_bridge.datasets.admin.dataset_exports import report_error
from training_bridge.datasets.apis.serializers import artifact_entries
from training_bridge.datasets.selectors.datasets import dataset_version_diff
from training_bridge.datasets.selectors.selection import selection_first_record
from training_bridge.datasets.services.datasets import (
    dataset_create,
    dataset_version_create,
    dataset_version_delete,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import (
    FORMATS,
    dataset_export_request,
    dataset_exports_request,
    export_folder,
)
from training_bridge.datasets.services.manifests import MANIFEST_NAME
from training_bridge.datasets.services.specs import dataset_specs_resolve
from training_bridge.models import Dataset, DatasetExport, DatasetVersion


@admin.register(Dataset)
class DatasetAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["description"])
            return
        created = dataset_create(
            name=obj.name, description=obj.description, created_by=request.user
        )
        obj.pk, obj.created_at, obj.created_by = created.pk, created.created_at, request.user


class DatasetVersionAddForm(forms.ModelForm):
    """A new version: its specs are checked (and the selection probed) before it is saved."""

    filter_spec = JSONFormField(
        initial=dict,
        help_text='e.g. {"queues": ["my-queue"], "min_judgments": 3, "min_agreement": 0.6, '
        '"keep_labels": ["winner", "tie"], "counterfactual_filter": "agree_with_intended", '
        '"aggregator": "dawid_skene", "min_confidence": 0.7, "exclude_paused": true}; '
        "aggregators: majority, trust_weighted, dawid_skene, glad, bradley_terry, noisy_bt",
    )
    split_spec = JSONFormField(
        initial=dict,
        required=False,
        help_text='e.g. {"seed": 0, "ratios": {"train": 0.8, "val": 0.1, "test": 0.1}, '
        '"held_out": {"relations": ["between"], "split": "test"}}',
    )

    class Meta:
        model = DatasetVersion
        fields = ["dataset", "parent", "filter_spec", "split_spec"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            specs = dataset_specs_resolve(
                filter_spec=data.get("filter_spec"), split_spec=data.get("split_spec") or {}
            )
            selection_first_record(spec=specs.filter, split=specs.split)
        except ValidationFailed as exc:
            target = (exc.field or "filter_spec").split(".", 1)[0].split("[", 1)[0]
            self.add_error(target if target in self.fields else None, str(exc))
        return data


@admin.register(DatasetVersion)
class DatasetVersionAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "__str__", "status", "aggregator", "record_count", "hash_short", "frozen_at", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "dataset"]
    search_fields = ["dataset__name", "content_hash"]
    list_select_related = ["dataset"]
    actions = ["freeze_versions", "export_all", "export_all_keys_only", "compare_two"]
    fields = [
        "dataset", "number", "parent", "status", "aggregator", "filter_spec", "split_spec",
        "content_hash", "record_count", "frozen_at", "created_by", "created_at", "error",
        "manifest_pretty",
    ]  # fmt: skip

    @admin.display(description="content hash")
    def hash_short(self, obj: DatasetVersion) -> str:
        return obj.content_hash[:12]

    @admin.display(description="train")
    def train_link(self, obj: DatasetVersion) -> str:
        """A link to the training run's start form with this version chosen: the training
        admin is another sub-package, so it is reached by URL, never imported."""
        if obj.status != DatasetVersion.Status.FROZEN:
            return "-"
        url = reverse("admin:training_bridge_trainingrun_add")
        return format_html('<a href="{}?dataset_version={}">Train a reward model</a>', url, obj.pk)

    def get_list_display(self, request):
        # Only who may start training runs sees the link (ML engineers, superusers).
        if admin_allows(request.user, model="training_bridge.trainingrun", action="add"):
            return [*self.list_display, "train_link"]
        return self.list_display

    @admin.display(description="manifest")
    def manifest_pretty(self, obj: DatasetVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.manifest, indent=2, sort_keys=True))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DatasetVersionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return DatasetVersionAddForm.Meta.fields
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        # Versions change only through the services: freeze, export, delete a draft.
        return [] if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        version = dataset_version_create(
            dataset_id=data["dataset"].pk,
            filter_spec=data["filter_spec"],
            split_spec=data.get("split_spec") or {},
            parent_id=data["parent"].pk if data.get("parent") else None,
            created_by=request.user,
        )
        obj.pk, obj.number, obj.status = version.pk, version.number, version.status

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status in (
            DatasetVersion.Status.FROZEN,
            DatasetVersion.Status.FREEZING,
        ):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        dataset_version_delete(version_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for version_id in queryset.values_list("pk", flat=True):
            dataset_version_delete(version_id=version_id)

    # -- actions ---------------------------------------------------------------------------

    @admin.action(description="Freeze the selected versions", permissions=["change"])
    def freeze_versions(self, request, queryset):
        for version_id in queryset.values_list("pk", flat=True):
            try:
                version = dataset_version_freeze_request(version_id=version_id)
                self.message_user(request, f"{version}: freezing (a cpu task).")
            except DomainError as exc:
                report_error(self, request, exc)

    def _export(self, request, queryset, include_images: bool) -> None:
        for version_id in queryset.values_list("pk", flat=True):
            try:
                dataset_exports_request(version_id=version_id, include_images=include_images)
                self.message_user(request, f"version {version_id}: exports queued.")
            except DomainError as exc:
                report_error(self, request, exc)

    @admin.action(description="Export in every format (with images)", permissions=["change"])
    def export_all(self, request, queryset):
        self._export(request, queryset, include_images=True)

    @admin.action(description="Export in every format (image keys only)", permissions=["change"])
    def export_all_keys_only(self, request, queryset):
        self._export(request, queryset, include_images=False)

    @admin.action(description="Compare two selected versions", permissions=["view"])
    def compare_two(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        if len(ids) != 2:
            self.message_user(request, "Select exactly two versions.", level=messages.ERROR)
            return None
        url = reverse("admin:training_bridge_datasetversion_diff", args=[ids[0]])
        return HttpResponseRedirect(f"{url}?other={ids[1]}")

    # -- pages -----------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:version_id>/freeze/",
                view(self.freeze_view),
                name="training_bridge_datasetversion_freeze",
            ),
            path(
                "<int:version_id>/export/",
                view(self.export_view),
                name="training_bridge_datasetversion_export",
            ),
            path(
                "<int:version_id>/diff/",
                view(self.diff_view),
                name="training_bridge_datasetversion_diff",
            ),
            *super().get_urls(),
        ]

    def _back(self, version_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:training_bridge_datasetversion_change", args=[version_id])
        )

    def freeze_view(self, request, version_id: int):
        if request.method != "POST" or not self.has_change_permission(request):
            return self._back(version_id)
        try:
            dataset_version_freeze_request(version_id=version_id)
            self.message_user(request, "Freezing: the page refreshes until it is done.")
        except DomainError as exc:
            report_error(self, request, exc)
        return self._back(version_id)

    def export_view(self, request, version_id: int):
        if request.method != "POST" or not self.has_change_permission(request):
            return self._back(version_id)
        chosen = request.POST.get("format", "all")
        include_images = request.POST.get("include_images") == "1"
        try:
            if chosen == "all":
                dataset_exports_request(version_id=version_id, include_images=include_images)
            else:
                dataset_export_request(
                    version_id=version_id,
                    format=chosen,
                    include_images=include_images,
                    force=request.POST.get("force") == "1",
                )
            self.message_user(request, "Export queued: progress shows below.")
        except DomainError as exc:
            report_error(self, request, exc)
        return self._back(version_id)

    def diff_view(self, request, version_id: int):
        version = get_object_or_404(DatasetVersion.objects.select_related("dataset"), pk=version_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Compare {version}",
            "version": version,
        }
        try:
            other = int(request.GET.get("other", ""))
            context["diff"] = dataset_version_diff(base_id=version_id, other_id=other, limit=200)
        except ValueError:
            context["error"] = "other: give the id of the version to compare with"
        except DomainError as exc:
            context["error"] = str(exc)
        return TemplateResponse(request, "admin/training_bridge/datasetversion/diff.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = DatasetVersion.objects.select_related("dataset").filter(pk=object_id).first()
        extra = dict(extra_context or {})
        if version is not None:
            exports = list(version.exports.order_by("format", "include_images"))
            extra.update(
                charts=version_charts(version.manifest),
                exports=[
                    {
                        "export": export,
                        "percent": 100
                        if export.status == DatasetExport.Status.DONE
                        else (
                            round(100 * export.records_done / export.records_total)
                            if export.records_total
                            else 0
                        ),
                        "files": artifact_entries(
                            version.pk,
                            export_folder(
                                format=export.format, include_images=export.include_images
                            ),
                            export.artifacts if export.status == DatasetExport.Status.DONE else [],
                        ),
                    }
                    for export in exports
                ],
                manifest_url=reverse(
                    "api:training:dataset-artifact",
                    kwargs={"version_id": version.pk, "name": MANIFEST_NAME},
                )
                if version.is_frozen
                else None,
                formats=FORMATS,
                others=DatasetVersion.objects.filter(
                    dataset=version.dataset, status=DatasetVersion.Status.FROZEN
                ).exclude(pk=version.pk),
                auto_refresh=version.status == DatasetVersion.Status.FREEZING
                or any(
                    e.status in (DatasetExport.Status.QUEUED, DatasetExport.Status.RUNNING)
                    for e in exports
                ),
                version_obj=version,
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)
