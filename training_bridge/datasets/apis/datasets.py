"""API of datasets, versions, exports, diffs and artifact downloads (leads write; ML engineers
read and download: the role matrix, config/permissions.py).

Freezing and exporting are `cpu` tasks: their endpoints answer 202 and the version or export
row reports progress. A malformed spec or an empty selection is a 400 naming the key.
"""

from django.db.models import Prefetch
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound
from training_bridge.datasets.apis import serializers as s
from training_bridge.datasets.apis.downloads import artifact_response
from training_bridge.datasets.selectors.datasets import (
    dataset_artifact_key,
    dataset_version_diff,
    dataset_version_get,
)
from training_bridge.datasets.services.datasets import (
    dataset_create,
    dataset_version_create,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import (
    dataset_export_request,
    dataset_exports_request,
)
from training_bridge.models import Dataset, DatasetExport, DatasetVersion

_ERRORS = {
    400: OpenApiResponse(s.DatasetErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(s.DatasetErrorSerializer, description="Not for your role."),
    404: OpenApiResponse(
        s.DatasetErrorSerializer, description="Unknown dataset, version or export."
    ),
    409: OpenApiResponse(s.DatasetErrorSerializer, description="Not allowed in the current state."),
}


def _versions():
    return DatasetVersion.objects.select_related("dataset").prefetch_related(
        Prefetch("exports", queryset=DatasetExport.objects.order_by("format", "include_images"))
    )


def _version(version_id: int) -> DatasetVersion:
    found = _versions().filter(pk=version_id).first()
    if found is None:
        raise NotFound(f"no dataset version {version_id}", field="version")
    return found


class DatasetListApi(APIView):
    @extend_schema(operation_id="datasets_list", responses={200: s.DatasetSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(s.DatasetSerializer(Dataset.objects.order_by("name"), many=True).data)

    @extend_schema(
        operation_id="datasets_create",
        request=s.DatasetCreateSerializer,
        responses={201: s.DatasetSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = s.DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = dataset_create(**body.validated_data, created_by=request.user)
        return Response(s.DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetVersionListApi(APIView):
    @extend_schema(
        operation_id="dataset_versions_list",
        responses={200: s.DatasetVersionSerializer(many=True), **_ERRORS},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        if not Dataset.objects.filter(pk=dataset_id).exists():
            raise NotFound(f"no dataset {dataset_id}", field="dataset")
        versions = _versions().filter(dataset_id=dataset_id).order_by("-number")
        return Response(s.DatasetVersionSerializer(versions, many=True).data)

    @extend_schema(
        operation_id="dataset_versions_create",
        request=s.DatasetVersionCreateSerializer,
        responses={201: s.DatasetVersionSerializer, 202: s.DatasetVersionSerializer, **_ERRORS},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        body = s.DatasetVersionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = dataset_version_create(
            dataset_id=dataset_id,
            filter_spec=data["filter_spec"],
            split_spec=data["split_spec"],
            parent_id=data["parent"],
            created_by=request.user,
        )
        code = status.HTTP_201_CREATED
        if data["freeze"]:
            dataset_version_freeze_request(version_id=version.pk)
            code = status.HTTP_202_ACCEPTED
        return Response(s.DatasetVersionSerializer(_version(version.pk)).data, status=code)


class DatasetVersionDetailApi(APIView):
    @extend_schema(
        operation_id="dataset_version_detail",
        responses={200: s.DatasetVersionSerializer, **_ERRORS},
    )
    def get(self, request: Request, version_id: int) -> Response:
        return Response(s.DatasetVersionSerializer(_version(version_id)).data)


class DatasetVersionFreezeApi(APIView):
    @extend_schema(
        operation_id="dataset_version_freeze",
        request=None,
        responses={202: s.DatasetVersionSerializer, **_ERRORS},
    )
    def post(self, request: Request, version_id: int) -> Response:
        dataset_version_freeze_request(version_id=version_id)
        return Response(s.DatasetVersionSerializer(_version(version_id)).data, status=202)


class DatasetExportCreateApi(APIView):
    @extend_schema(
        operation_id="dataset_version_export",
        request=s.DatasetExportCreateSerializer,
        responses={202: s.DatasetExportSerializer(many=True), **_ERRORS},
    )
    def post(self, request: Request, version_id: int) -> Response:
        body = s.DatasetExportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["format"] == "all":
            exports = dataset_exports_request(
                version_id=version_id, include_images=data["include_images"]
            )
        else:
            exports = [
                dataset_export_request(
                    version_id=version_id,
                    format=data["format"],
                    include_images=data["include_images"],
                    force=data["force"],
                )
            ]
        return Response(s.DatasetExportSerializer(exports, many=True).data, status=202)


class DatasetExportDetailApi(APIView):
    @extend_schema(operation_id="dataset_export_detail", responses={200: s.DatasetExportSerializer})
    def get(self, request: Request, export_id: int) -> Response:
        export = DatasetExport.objects.filter(pk=export_id).first()
        if export is None:
            raise NotFound(f"no dataset export {export_id}", field="export")
        return Response(s.DatasetExportSerializer(export).data)


class DatasetVersionDiffApi(APIView):
    @extend_schema(
        operation_id="dataset_version_diff",
        parameters=[s.DatasetDiffQuerySerializer],
        responses={200: s.DatasetDiffSerializer, **_ERRORS},
    )
    def get(self, request: Request, version_id: int) -> Response:
        query = s.DatasetDiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        diff = dataset_version_diff(
            base_id=version_id,
            other_id=query.validated_data["other"],
            limit=query.validated_data["limit"],
            votes=query.validated_data["votes"],
        )
        return Response(diff)


class DatasetArtifactApi(APIView):
    """Download one listed artifact: a redirect to a presigned URL on S3, the bytes locally."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="dataset_version_artifact",
        parameters=[
            OpenApiParameter(
                "name",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="Path under the version's prefix, e.g. parquet/train-00000.parquet",
            )
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The file (local storage)."
            ),
            302: OpenApiResponse(description="Redirect to a presigned URL (S3 storage)."),
            **_ERRORS,
        },
    )
    def get(self, request: Request, version_id: int, name: str) -> HttpResponseBase:
        version = dataset_version_get(version_id=version_id)
        key = dataset_artifact_key(version=version, name=name)
        filename = f"{version.dataset.name}-v{version.number}-{name.replace('/', '-')}"
        return artifact_response(key=key, filename=filename)
