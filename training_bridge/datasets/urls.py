"""Routes of datasets, versions and exports (mounted by training_bridge/urls.py)."""

from django.urls import path

from training_bridge.datasets.apis import datasets

urlpatterns = [
    path("datasets/", datasets.DatasetListApi.as_view(), name="datasets"),
    path(
        "datasets/<int:dataset_id>/versions/",
        datasets.DatasetVersionListApi.as_view(),
        name="dataset-versions",
    ),
    path(
        "dataset-versions/<int:version_id>/",
        datasets.DatasetVersionDetailApi.as_view(),
        name="dataset-version",
    ),
    path(
        "dataset-versions/<int:version_id>/freeze/",
        datasets.DatasetVersionFreezeApi.as_view(),
        name="dataset-freeze",
    ),
    path(
        "dataset-versions/<int:version_id>/exports/",
        datasets.DatasetExportCreateApi.as_view(),
        name="dataset-exports",
    ),
    path(
        "dataset-versions/<int:version_id>/diff/",
        datasets.DatasetVersionDiffApi.as_view(),
        name="dataset-diff",
    ),
    path(
        "dataset-versions/<int:version_id>/artifacts/<path:name>",
        datasets.DatasetArtifactApi.as_view(),
        name="dataset-artifact",
    ),
    path(
        "dataset-exports/<int:export_id>/",
        datasets.DatasetExportDetailApi.as_view(),
        name="dataset-export",
    ),
]
