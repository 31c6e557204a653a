"""API of prompt sets and prompts (HackSoft style: one view per operation, nested serializers)."""

import itertools
from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from config.input_checks import BIGINT_MAX
from config.parsers import FormParser, JSONField, JSONParser, MultiPartParser
from generation_workers.models import Prompt, PromptSet, Split
from generation_workers.selectors.prompts import prompt_list, prompt_set_counts
from generation_workers.services.prompts import (
    prompt_set_create,
    prompt_set_import,
    prompt_set_import_benchmark,
)
from generation_workers.spatial import RELATION_IDS, PromptSpecError, build_prompt_set
from generation_workers.spatial.benchmarks import BENCHMARK_FORMATS

MAX_IMPORT_BYTES = 64 * 1024 * 1024
MAX_PREVIEW = 50


class PromptSetOutput(serializers.ModelSerializer):
    class Meta:
        model = PromptSet
        fields = [
            "id", "name", "version", "source", "status", "error", "prompt_count", "spec",
            "spec_hash", "locked_at", "created_at",
        ]  # fmt: skip


class PromptSetDetailOutput(PromptSetOutput):
    counts = serializers.SerializerMethodField()

    class Meta(PromptSetOutput.Meta):
        fields = [*PromptSetOutput.Meta.fields, "counts"]

    def get_counts(self, obj: PromptSet) -> dict[str, Any]:
        return prompt_set_counts(prompt_set=obj)


class PromptOutput(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = [
            "id", "prompt_set", "text", "structure", "tier", "template", "group_key", "split",
            "parent", "perturbation_type", "perturbation", "num_perturbations",
        ]  # fmt: skip


class PromptSetCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    spec = JSONField()


class PromptSetPreviewInput(serializers.Serializer):
    spec = JSONField()
    count = serializers.IntegerField(min_value=1, max_value=MAX_PREVIEW, default=10)


class PreviewPerturbationOutput(serializers.Serializer):
    text = serializers.CharField()
    type = serializers.CharField()


class PreviewRecordOutput(serializers.Serializer):
    text = serializers.CharField()
    tier = serializers.CharField()
    split = serializers.CharField()
    perturbations = PreviewPerturbationOutput(many=True)


IMPORT_FORMATS = ("jsonl", *BENCHMARK_FORMATS)


class PromptSetImportInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    format = serializers.ChoiceField(
        choices=list(IMPORT_FORMATS), default="jsonl",
        help_text="jsonl (ours: text, objects, relations), or a benchmark's own format: geneval "
        "(evaluation_metadata.jsonl, its position lines), t2i-compbench (spatial*.txt, one "
        "prompt a line), dpg-bench (prompts/<item id>.txt, one prompt a file: send each as a "
        "`file` part).",
    )  # fmt: skip
    file = serializers.FileField(
        required=False,
        help_text="The file (JSON Lines for jsonl); for a benchmark format, repeat the part "
        "for several files.",
    )
    jsonl = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The file's text instead of `file`."
    )
    vocabulary = JSONField(required=False, help_text="jsonl only.")


class PromptFilter(serializers.Serializer):
    prompt_set = serializers.IntegerField(required=False, min_value=1)
    relation = serializers.ChoiceField(choices=list(RELATION_IDS), required=False)
    object = serializers.CharField(required=False, max_length=100)
    tier = serializers.ChoiceField(choices=[1, 2, 3], required=False)
    split = serializers.ChoiceField(choices=Split.values, required=False)
    perturbation_type = serializers.ChoiceField(
        choices=["original", *[v for v in Prompt.Perturbation.values if v]], required=False
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX, default=0)


class PromptSetListCreateApi(APIView):
    @extend_schema(responses=PromptSetOutput(many=True))
    def get(self, request: Request) -> Response:
        sets = PromptSet.objects.order_by("-created_at")[:200]
        return Response(PromptSetOutput(sets, many=True).data)

    @extend_schema(
        request=PromptSetCreateInput,
        responses={201: PromptSetDetailOutput, 202: PromptSetOutput},
        description="Build a prompt set from a spec. Small sets are built at once (201); "
        "large ones are queued on the cpu queue (202, status 'building').",
    )
    def post(self, request: Request) -> Response:
        data = PromptSetCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        prompt_set = prompt_set_create(created_by=request.user, **data.validated_data)
        if prompt_set.status == PromptSet.Status.BUILDING:
            return Response(PromptSetOutput(prompt_set).data, status=status.HTTP_202_ACCEPTED)
        return Response(PromptSetDetailOutput(prompt_set).data, status=status.HTTP_201_CREATED)


class PromptSetPreviewApi(APIView):
    @extend_schema(request=PromptSetPreviewInput, responses=PreviewRecordOutput(many=True))
    def post(self, request: Request) -> Response:
        data = PromptSetPreviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(prompt_set_preview(**data.validated_data))


def prompt_set_preview(*, spec: Any, count: int) -> list[dict[str, Any]]:
    """The first records a spec would build, without saving anything."""
    if not isinstance(spec, dict):
        raise ValidationFailed("the spec must be a JSON/YAML object", field="spec")
    try:
        records = list(itertools.islice(build_prompt_set(spec), count))
    except PromptSpecError as exc:
        raise ValidationFailed(exc.message, field=f"spec.{exc.field}") from exc
    return [
        {
            "text": r["text"],
            "tier": r["tier"],
            "split": r["split"],
            "perturbations": [
                {"text": c["text"], "type": c["lineage"]["type"]} for c in r["perturbations"]
            ],
        }
        for r in records
    ]


class PromptSetImportApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=PromptSetImportInput, responses={201: PromptSetDetailOutput})
    def post(self, request: Request) -> Response:
        data = PromptSetImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        text = data.validated_data.get("jsonl")
        if upload is None and text is None:
            raise ValidationFailed("send the JSONL as a file or as 'jsonl' text", field="file")
        if data.validated_data["format"] != "jsonl":
            return self._benchmark(request, data.validated_data, text)
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise ValidationFailed(
                    f"the file is {upload.size} bytes; at most {MAX_IMPORT_BYTES}", field="file"
                )
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationFailed("the file is not UTF-8 text", field="file") from None
        prompt_set = prompt_set_import(
            name=data.validated_data["name"],
            lines=text.splitlines(),
            vocabulary=data.validated_data.get("vocabulary"),
            created_by=request.user,
        )
        return Response(PromptSetDetailOutput(prompt_set).data, status=status.HTTP_201_CREATED)

    def _benchmark(self, request: Request, data: dict[str, Any], text: str | None) -> Response:
        if data.get("vocabulary") is not None:
            raise ValidationFailed("a benchmark format has its own vocabulary", field="vocabulary")
        uploads = request.FILES.getlist("file")
        if sum(upload.size for upload in uploads) > MAX_IMPORT_BYTES:
            raise ValidationFailed(f"the files are over {MAX_IMPORT_BYTES} bytes", field="file")
        files = [(upload.name, upload.read()) for upload in uploads]
        if text is not None:
            files.append(("jsonl", text))
        prompt_set = prompt_set_import_benchmark(
            name=data["name"], fmt=data["format"], files=files, created_by=request.user
        )
        return Response(PromptSetDetailOutput(prompt_set).data, status=status.HTTP_201_CREATED)


class PromptSetDetailApi(APIView):
    @extend_schema(responses=PromptSetDetailOutput)
    def get(self, request: Request, prompt_set_id: int) -> Response:
        prompt_set = get_object_or_404(PromptSet, pk=prompt_set_id)
        return Response(PromptSetDetailOutput(prompt_set).data)


class PromptListApi(APIView):
    @extend_schema(parameters=[PromptFilter], responses=PromptOutput(many=True))
    def get(self, request: Request) -> Response:
        params = PromptFilter(data=request.query_params)
        params.is_valid(raise_exception=True)
        f = params.validated_data
        perturbation = f.get("perturbation_type")  # "original" is stored as ""
        prompts = prompt_list(
            prompt_set_id=f.get("prompt_set"),
            relation=f.get("relation"),
            object_name=f.get("object"),
            tier=int(f["tier"]) if "tier" in f else None,
            split=f.get("split"),
            perturbation_type=None
            if perturbation is None
            else perturbation.replace("original", ""),
        )
        page = prompts[f["offset"] : f["offset"] + f["limit"]]
        return Response(PromptOutput(page, many=True).data)


urlpatterns = [
    path("prompt-sets/", PromptSetListCreateApi.as_view(), name="prompt-set-list"),
    path("prompt-sets/preview/", PromptSetPreviewApi.as_view(), name="prompt-set-preview"),
    path("prompt-sets/import/", PromptSetImportApi.as_view(), name="prompt-set-import"),
    path(
        "prompt-sets/<int:prompt_set_id>/", PromptSetDetailApi.as_view(), name="prompt-set-detail"
    ),
    path("prompts/", PromptListApi.as_view(), name="prompt-list"),
]
