"""API of training runs: start (ML engineers), list, detail, cancel, live metric points,
artifact downloads (leads and ML engineers read); the launcher definitions a run may pick, read
only (they are written by superusers in the admin or `manage.py training_launchers load`).

Starting the same (version, config) again answers 200 with the existing run; a new run is
201; `force` makes a new attempt. A bad config or a version that is not frozen is a 400 whose
`field` names the key (`config.backbone`, `config.model_path`, `dataset_version`).
"""

from __future__ import annotations

from django.http import HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.parsers import JSONField
from training_bridge.datasets.apis.downloads import artifact_response
from training_bridge.models import TrainingLauncher, TrainingRun
from training_bridge.training.selectors.training import (
    training_launchers_list,
    training_metrics_after,
    training_run_artifact_key,
    training_run_get,
    training_runs_list,
)
from training_bridge.training.services.launcher_definitions import argv_placeholders
from training_bridge.training.services.training import training_run_cancel, training_run_start


class TrainingErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)


_ERRORS = {
    400: OpenApiResponse(TrainingErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(TrainingErrorSerializer, description="Not available to your role."),
    404: OpenApiResponse(TrainingErrorSerializer, description="Unknown run or version."),
    409: OpenApiResponse(TrainingErrorSerializer, description="Not allowed in this state."),
}


class TrainingArtifactSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Path under the run's prefix, e.g. checkpoint/...")
    key = serializers.CharField(help_text="Storage key.")
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    download_url = serializers.CharField()


class TrainingRunSerializer(serializers.ModelSerializer):
    # Plain strings: other apps' enums named "status" would collide in the schema.
    status = serializers.CharField(
        read_only=True, help_text="queued | running | succeeded | failed | cancelled"
    )
    launcher = serializers.CharField(
        read_only=True,
        help_text="builtin, or the name of the launcher definition the run was started with "
        "(external: a run of the removed free-form command launcher)",
    )
    launcher_definition = serializers.IntegerField(
        source="launcher_definition_id",
        read_only=True,
        allow_null=True,
        help_text="The launcher definition's id; null for the built-in trainer.",
    )
    dataset = serializers.CharField(source="dataset_version.dataset.name", read_only=True)
    version_number = serializers.IntegerField(source="dataset_version.number", read_only=True)
    artifacts = serializers.SerializerMethodField()
    reward_model = serializers.SerializerMethodField()
    metrics_url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "dataset_version", "dataset", "version_number", "attempt", "launcher",
            "launcher_definition", "status", "config", "config_hash", "step", "total_steps",
            "epoch", "cancel_requested", "summary", "artifacts", "error", "log_tail", "worker",
            "heartbeat_at", "created_at", "started_at", "finished_at", "reward_model",
            "metrics_url",
        ]  # fmt: skip

    @extend_schema_field(TrainingArtifactSerializer(many=True))
    def get_artifacts(self, run: TrainingRun) -> list[dict]:
        return [
            {
                "name": a["name"],
                "key": a["key"],
                "size": a["size"],
                "sha256": a["sha256"],
                "download_url": reverse(
                    "api:training:training-run-artifact",
                    kwargs={"run_id": run.pk, "name": a["name"]},
                ),
            }
            for a in run.artifacts
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))  # null until it succeeds
    def get_reward_model(self, run: TrainingRun) -> int | None:
        model = getattr(run, "reward_model", None)
        return model.pk if model is not None else None

    def get_metrics_url(self, run: TrainingRun) -> str:
        return reverse("api:training:training-run-metrics", kwargs={"run_id": run.pk})


class TrainingRunStartSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField(min_value=1, help_text="A frozen version's id.")
    config = JSONField(
        help_text='Built-in trainer, e.g. {"backbone": "builtin", "head": "gaussian", "epochs": 5, '
        '"batch_size": 32, "lr": 0.001, "seed": 0, "early_stopping": {"patience": 2}, '
        '"device": "auto"}. A launcher definition (GET /api/training-launchers/): '
        '{"launcher": "<name>", "model_name": "my-rm", "dataset_format": "parquet", "options": '
        '{"lora_rank": 16, "data_subdir": "parquet"}}: option values are strings, numbers, '
        "booleans, null or lists of those; strings with shell metacharacters or paths outside "
        "the run's folder are refused. A `command` key is refused."
    )
    force = serializers.BooleanField(default=False, help_text="A new attempt even if it ran.")


class TrainingRunListQuerySerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField(min_value=1, required=False)
    status = serializers.CharField(required=False)


class TrainingMetricPointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    step = serializers.IntegerField()
    epoch = serializers.IntegerField(allow_null=True)
    value = serializers.FloatField()


class TrainingRunProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    epoch = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    error = serializers.CharField()
    log_tail = serializers.CharField()
    summary = serializers.JSONField()


class TrainingMetricsSerializer(serializers.Serializer):
    run = TrainingRunProgressSerializer()
    points = TrainingMetricPointSerializer(many=True)
    last_id = serializers.IntegerField(help_text="Pass as `after` on the next poll.")


class TrainingMetricsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, default=0, help_text="Points after this id.")


class TrainingLauncherSerializer(serializers.ModelSerializer):
    placeholders = serializers.SerializerMethodField(
        help_text="Which of {dataset_dir}, {output_dir}, {config_file}, {run_id} the command "
        "gets; a run's options reach it through {config_file}."
    )

    class Meta:
        model = TrainingLauncher
        fields = ["name", "description", "enabled", "placeholders", "updated_at"]
        read_only_fields = fields  # written by superusers only, never through the API

    def get_placeholders(self, launcher: TrainingLauncher) -> list[str]:
        return argv_placeholders(launcher.argv)


class TrainingLauncherListApi(APIView):
    """The launcher definitions a run's config may name (besides "builtin"); read only."""

    @extend_schema(
        operation_id="training_launchers_list",
        responses={200: TrainingLauncherSerializer(many=True), 403: _ERRORS[403]},
    )
    def get(self, request: Request) -> Response:
        return Response(TrainingLauncherSerializer(training_launchers_list(), many=True).data)


class TrainingRunListApi(APIView):
    @extend_schema(
        operation_id="training_runs_list",
        parameters=[TrainingRunListQuerySerializer],
        responses={200: TrainingRunSerializer(many=True), **_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = TrainingRunListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = training_runs_list(
            version_id=query.validated_data.get("dataset_version"),
            status=query.validated_data.get("status"),
        )[:200]
        return Response(TrainingRunSerializer(runs, many=True).data)

    @extend_schema(
        operation_id="training_runs_start",
        request=TrainingRunStartSerializer,
        responses={
            201: OpenApiResponse(TrainingRunSerializer, description="A new run (queued)."),
            200: OpenApiResponse(TrainingRunSerializer, description="The existing run."),
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = TrainingRunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        started = training_run_start(
            version_id=data["dataset_version"],
            config=data["config"],
            force=data["force"],
            created_by=request.user,
        )
        code = status.HTTP_201_CREATED if started.created else status.HTTP_200_OK
        run = training_run_get(run_id=started.run.pk)
        return Response(TrainingRunSerializer(run).data, status=code)


class TrainingRunDetailApi(APIView):
    @extend_schema(
        operation_id="training_run_detail", responses={200: TrainingRunSerializer, **_ERRORS}
    )
    def get(self, request: Request, run_id: int) -> Response:
        return Response(TrainingRunSerializer(training_run_get(run_id=run_id)).data)


class TrainingRunCancelApi(APIView):
    @extend_schema(
        operation_id="training_run_cancel",
        request=None,
        responses={200: TrainingRunSerializer, **_ERRORS},
    )
    def post(self, request: Request, run_id: int) -> Response:
        training_run_cancel(run_id=run_id)
        return Response(TrainingRunSerializer(training_run_get(run_id=run_id)).data)


class TrainingRunMetricsApi(APIView):
    """The run's progress and its metric points after `after`: what the live charts poll."""

    @extend_schema(
        operation_id="training_run_metrics",
        parameters=[TrainingMetricsQuerySerializer],
        responses={200: TrainingMetricsSerializer, **_ERRORS},
    )
    def get(self, request: Request, run_id: int) -> Response:
        query = TrainingMetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after = query.validated_data["after"]
        run = training_run_get(run_id=run_id)
        points = training_metrics_after(run_id=run.pk, after_id=after)
        return Response(
            {
                "run": {
                    "id": run.pk,
                    "status": run.status,
                    "step": run.step,
                    "total_steps": run.total_steps,
                    "epoch": run.epoch,
                    "cancel_requested": run.cancel_requested,
                    "error": run.error,
                    "log_tail": run.log_tail,
                    "summary": run.summary,
                },
                "points": points,
                "last_id": points[-1]["id"] if points else after,
            }
        )


class TrainingRunArtifactApi(APIView):
    """Download one listed artifact: a redirect to a presigned URL on S3, the bytes locally."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="training_run_artifact",
        parameters=[
            OpenApiParameter(
                "name",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="Path under the run's prefix, e.g. checkpoint/model.safetensors",
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
    def get(self, request: Request, run_id: int, name: str) -> HttpResponseBase:
        run = training_run_get(run_id=run_id)
        key = training_run_artifact_key(run=run, name=name)
        filename = f"run-{run.pk}-{name.replace('/', '-')}"
        return artifact_response(key=key, filename=filename)
