"""API of generator configs: list, create, read, update, and the check (leads write; leads
and ML engineers read). Views parse the body with a serializer and call the same services as the
admin; domain errors become {"error", "detail", "field"} 4xx bodies."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound, ValidationFailed
from generation_workers.models import GeneratorConfig
from generation_workers.services.config_rules import EDITABLE_FIELDS
from generation_workers.services.configs import (
    generator_config_check_request,
    generator_config_create,
    generator_config_update,
)


class GenerationErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)


ERROR_RESPONSES = {
    400: OpenApiResponse(GenerationErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(GenerationErrorSerializer, description="Leads only (reads: ML too)."),
    404: OpenApiResponse(GenerationErrorSerializer, description="Unknown id."),
    409: OpenApiResponse(GenerationErrorSerializer, description="Not allowed in this state."),
}


class GeneratorConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = GeneratorConfig
        fields = [
            "id", *EDITABLE_FIELDS, "model_revision", "check_status", "check_message",
            "checked_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class GeneratorConfigWriteSerializer(serializers.Serializer):
    """Types only; the service checks the meaning (folder, sizes, names) and names the field."""

    name = serializers.CharField(max_length=100, required=False)
    backend = serializers.ChoiceField(GeneratorConfig.Backend.choices, required=False)
    model_path = serializers.CharField(max_length=1024, allow_blank=True, required=False)
    pipeline_class = serializers.CharField(max_length=128, allow_blank=True, required=False)
    dtype = serializers.CharField(max_length=16, required=False)
    device = serializers.CharField(max_length=32, required=False)
    scheduler = serializers.CharField(max_length=128, allow_blank=True, required=False)
    num_inference_steps = serializers.IntegerField(required=False)
    guidance_scale = serializers.FloatField(required=False)
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    negative_prompt = serializers.CharField(allow_blank=True, required=False)
    batch_size = serializers.IntegerField(required=False)
    extra_args = serializers.DictField(required=False)
    image_format = serializers.ChoiceField(["png", "webp"], required=False)
    queue = serializers.CharField(max_length=64, allow_blank=True, required=False)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise ValidationFailed(f"unknown field {unknown[0]!r}", field=unknown[0])
        return attrs


def _config(config_id: int) -> GeneratorConfig:
    config = GeneratorConfig.objects.filter(pk=config_id).first()
    if config is None:
        raise NotFound(f"no generator config {config_id}", field="config")
    return config


class ConfigListApi(ListAPIView):
    serializer_class = GeneratorConfigSerializer
    queryset = GeneratorConfig.objects.all()

    @extend_schema(operation_id="generation_configs_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="generation_config_create",
        request=GeneratorConfigWriteSerializer,
        responses={201: GeneratorConfigSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        body = GeneratorConfigWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        config = generator_config_create(**body.validated_data)
        return Response(GeneratorConfigSerializer(config).data, status=status.HTTP_201_CREATED)


class ConfigDetailApi(APIView):
    @extend_schema(
        operation_id="generation_config",
        responses={200: GeneratorConfigSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, config_id: int) -> Response:
        return Response(GeneratorConfigSerializer(_config(config_id)).data)

    @extend_schema(
        operation_id="generation_config_update",
        request=GeneratorConfigWriteSerializer,
        responses={200: GeneratorConfigSerializer, **ERROR_RESPONSES},
    )
    def patch(self, request: Request, config_id: int) -> Response:
        body = GeneratorConfigWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        config = generator_config_update(config_id=config_id, **body.validated_data)
        return Response(GeneratorConfigSerializer(config).data)


class ConfigCheckApi(APIView):
    @extend_schema(
        operation_id="generation_config_check",
        request=None,
        responses={202: GeneratorConfigSerializer, **ERROR_RESPONSES},
        description="A worker on the config's queue loads the model once and records the "
        "result in check_status / check_message.",
    )
    def post(self, request: Request, config_id: int) -> Response:
        config = generator_config_check_request(config_id=config_id)
        return Response(GeneratorConfigSerializer(config).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("generation/configs/", ConfigListApi.as_view(), name="config-list"),
    path("generation/configs/<int:config_id>/", ConfigDetailApi.as_view(), name="config"),
    path(
        "generation/configs/<int:config_id>/check/", ConfigCheckApi.as_view(), name="config-check"
    ),
]
