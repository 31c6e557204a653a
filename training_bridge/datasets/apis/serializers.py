"""Serializers of the dataset API: explicit fields in, explicit fields out."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.parsers import JSONField
from training_bridge.models import Dataset, DatasetExport, DatasetVersion


class DatasetErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DatasetVersionCreateSerializer(serializers.Serializer):
    filter_spec = JSONField(help_text="Queues, time range, kinds, thresholds...")
    split_spec = JSONField(required=False, default=dict)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    freeze = serializers.BooleanField(
        default=False, help_text="Queue the freeze right away (202 instead of 201)."
    )


class DatasetArtifactSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Path under the version's prefix.")
    key = serializers.CharField(help_text="Storage key.")
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    download_url = serializers.CharField()


def artifact_entries(version_id: int, folder: str, artifacts: list[dict]) -> list[dict]:
    return [
        {
            "name": f"{folder}/{a['name']}",
            "key": a["key"],
            "size": a["size"],
            "sha256": a["sha256"],
            "download_url": reverse(
                "api:training:dataset-artifact",
                kwargs={"version_id": version_id, "name": f"{folder}/{a['name']}"},
            ),
        }
        for a in artifacts
    ]


class DatasetExportSerializer(serializers.ModelSerializer):
    # Plain strings: other apps' enums named "status"/"format" would collide in the schema.
    status = serializers.CharField(read_only=True, help_text="queued | running | done | failed")
    format = serializers.CharField(
        read_only=True, help_text="jsonl | parquet | hps | webdataset | openrlhf | arena"
    )
    progress = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "version",
            "format",
            "include_images",
            "status",
            "records_done",
            "records_total",
            "progress",
            "files",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, export: DatasetExport) -> float:
        if export.status == DatasetExport.Status.DONE:
            return 1.0
        return round(export.records_done / export.records_total, 4) if export.records_total else 0

    @staticmethod
    def folder(export: DatasetExport) -> str:
        from training_bridge.datasets.services.exports import export_folder

        return export_folder(format=export.format, include_images=export.include_images)

    @extend_schema_field(DatasetArtifactSerializer(many=True))
    def get_files(self, export: DatasetExport) -> list[dict]:
        return artifact_entries(export.version_id, self.folder(export), export.artifacts)


class DatasetExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=[*DatasetExport.Format.values, "all"], help_text="One format, or all of them."
    )
    include_images = serializers.BooleanField(default=True)
    force = serializers.BooleanField(default=False, help_text="Export again even if done.")


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    status = serializers.CharField(read_only=True, help_text="draft | freezing | frozen | failed")
    exports = DatasetExportSerializer(many=True, read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "dataset",
            "number",
            "parent",
            "status",
            "filter_spec",
            "split_spec",
            "aggregator",
            "content_hash",
            "record_count",
            "error",
            "created_at",
            "frozen_at",
            "manifest",
            "exports",
        ]


class DatasetDiffQuerySerializer(serializers.Serializer):
    other = serializers.IntegerField(min_value=1, help_text="The version to compare with.")
    limit = serializers.IntegerField(min_value=0, max_value=10_000, default=100)
    votes = serializers.BooleanField(
        default=False,
        help_text="Also list unchanged pairs whose vote counts or agreement changed (revoted).",
    )


class DatasetDiffSerializer(serializers.Serializer):
    base = serializers.DictField()
    other = serializers.DictField()
    unchanged_means = serializers.CharField(
        help_text="What `unchanged` counts: same label and same split (votes may differ)."
    )
    counts = serializers.DictField(child=serializers.IntegerField())
    added = serializers.ListField(child=serializers.IntegerField())
    removed = serializers.ListField(child=serializers.IntegerField())
    relabelled = serializers.ListField(child=serializers.DictField())
    resplit = serializers.ListField(child=serializers.DictField())
    revoted = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Only with `votes=true`."
    )
