"""The reward-model registry over HTTP: list, register (a run's model or a checkpoint in the
storage), detail, the promoted model of a name, promote (with `confirm` when the model compares
worse than the promoted one), archive, one model's accuracy by relation on a frozen version's
test split, and the side-by-side comparison of two models there. Reads, evaluations and
comparisons: leads and ML engineers; writes: ML engineers.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound
from config.parsers import JSONField, JSONParser
from training_bridge.models import RewardModel
from training_bridge.reward_models.selectors.reward_models import (
    reward_model_default_name,
    reward_model_get,
    reward_model_promoted,
    reward_models_list,
)
from training_bridge.reward_models.services.evaluation import (
    Comparison,
    ModelEvaluation,
    reward_model_evaluation,
    reward_models_compare,
)
from training_bridge.reward_models.services.registry import (
    reward_model_archive,
    reward_model_promote,
    reward_model_register_checkpoint,
    reward_model_register_run,
)


class RewardErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)


ERRORS = {
    400: OpenApiResponse(RewardErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(RewardErrorSerializer, description="Not available to your role."),
    404: OpenApiResponse(RewardErrorSerializer, description="Unknown model, version or run."),
    409: OpenApiResponse(RewardErrorSerializer, description="Not allowed in this state."),
}
# Operations whose body is all optional read JSON only (a form adds nothing to two flags).
JSON_ONLY = {
    415: OpenApiResponse(RewardErrorSerializer, description="The body is not JSON."),
}
PROMOTE_ERRORS = {
    **ERRORS,
    **JSON_ONLY,
    409: OpenApiResponse(
        RewardErrorSerializer,
        description="`confirmation_required` (field `confirm`): the model compares worse than "
        "the promoted one, or their comparison is still being evaluated; `detail` gives both "
        "accuracies. Send `confirm: true` to promote it anyway. Also: a concurrent promotion.",
    ),
}


class RewardModelSerializer(serializers.ModelSerializer):
    # A plain string: other apps' enums named "status" would collide in the schema.
    status = serializers.CharField(read_only=True, help_text="candidate | promoted | archived")
    # null for a checkpoint registered without a dataset version
    dataset = serializers.CharField(
        source="dataset_version.dataset.name", read_only=True, default=None, allow_null=True
    )
    dataset_version_number = serializers.IntegerField(
        source="dataset_version.number", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = RewardModel
        fields = [
            "id", "name", "version", "status", "run", "dataset_version", "dataset",
            "dataset_version_number", "artifact_key", "metrics", "promoted_at", "created_at",
        ]  # fmt: skip


class RewardModelListQuerySerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    status = serializers.CharField(required=False, help_text="candidate | promoted | archived")


class RewardModelRegisterSerializer(serializers.Serializer):
    run = serializers.IntegerField(
        required=False, min_value=1, help_text="A succeeded training run: its model (once)."
    )
    name = serializers.CharField(required=False, max_length=100)
    artifact_key = serializers.CharField(
        required=False,
        max_length=500,
        help_text="A checkpoint folder (prefix) in the default storage, in the trainer's "
        "format (reward_model.json + weights).",
    )
    dataset_version = serializers.IntegerField(required=False, min_value=1)
    metrics = JSONField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "run" in data:
            extra = sorted(set(data) - {"run"})
            if extra:
                raise serializers.ValidationError({extra[0]: "not with `run`"})
        elif not data.get("name") or not data.get("artifact_key"):
            missing = "name" if not data.get("name") else "artifact_key"
            raise serializers.ValidationError({missing: "`run`, or `name` and `artifact_key`"})
        return data


class RewardCurrentQuerySerializer(serializers.Serializer):
    name = serializers.CharField(required=False, help_text="Default: the platform's model name.")


class RewardPromoteRequestSerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        default=False,
        help_text="Promote even though the model compares worse than the promoted one.",
    )


DEFAULT_VERSION = (
    "A frozen version; default: the candidate's own frozen version, else the most recently "
    "frozen version with test pairs."
)


class RewardCompareRequestSerializer(serializers.Serializer):
    model_a = serializers.IntegerField(min_value=1, help_text="The baseline.")
    model_b = serializers.IntegerField(
        min_value=1, help_text="The candidate (unless b is promoted and a is not)."
    )
    dataset_version = serializers.IntegerField(
        required=False, min_value=1, help_text=DEFAULT_VERSION
    )
    refresh = serializers.BooleanField(default=False, help_text="Evaluate again.")


class RewardEvaluateRequestSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField(
        required=False, min_value=1, help_text=DEFAULT_VERSION
    )
    refresh = serializers.BooleanField(default=False, help_text="Evaluate again.")


def _interval_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True,
        help_text="Wilson 95% interval [low, high] of the accuracy; null without pairs.",
    )  # fmt: skip


class RewardComparisonRowSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="overall | relation | num_perturbations | config")
    key = serializers.CharField()
    count = serializers.IntegerField()
    a = serializers.FloatField(allow_null=True, help_text="Pairwise accuracy of model a.")
    b = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True, help_text="b - a")
    a_interval = _interval_field()
    b_interval = _interval_field()


class RewardAccuracyRowSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="overall | relation")
    key = serializers.CharField(help_text="all, or a relation key of the judged prompts")
    count = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    interval = _interval_field()


class RewardVersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.CharField()
    number = serializers.IntegerField()


class RewardComparisonSerializer(serializers.Serializer):
    dataset_version = RewardVersionRefSerializer()
    split = serializers.CharField()
    test_pairs = serializers.IntegerField(
        help_text="Labelled pairs of the version's test split; 0: nothing was compared."
    )
    candidate = serializers.IntegerField(help_text="The model the default version is for.")
    model_a = RewardModelSerializer()
    model_b = RewardModelSerializer()
    ready = serializers.BooleanField(help_text="false: evaluations run on the cpu queue.")
    pending = serializers.ListField(child=serializers.IntegerField())
    rows = RewardComparisonRowSerializer(many=True)
    evaluation_a = serializers.JSONField(allow_null=True)
    evaluation_b = serializers.JSONField(allow_null=True)


class RewardEvaluationSerializer(serializers.Serializer):
    model = RewardModelSerializer()
    dataset_version = RewardVersionRefSerializer()
    split = serializers.CharField()
    test_pairs = serializers.IntegerField(
        help_text="Labelled pairs of the version's test split; 0: nothing was evaluated."
    )
    ready = serializers.BooleanField(help_text="false: the evaluation runs on the cpu queue.")
    rows = RewardAccuracyRowSerializer(many=True)
    evaluation = serializers.JSONField(allow_null=True)


class RewardModelListApi(APIView):
    @extend_schema(
        operation_id="reward_models_list",
        parameters=[RewardModelListQuerySerializer],
        responses={200: RewardModelSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = RewardModelListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        models = reward_models_list(
            name=query.validated_data.get("name"), status=query.validated_data.get("status")
        )[:500]
        return Response(RewardModelSerializer(models, many=True).data)

    @extend_schema(
        operation_id="reward_models_register",
        request=RewardModelRegisterSerializer,
        responses={
            201: OpenApiResponse(RewardModelSerializer, description="Registered."),
            200: OpenApiResponse(RewardModelSerializer, description="Registered before."),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = RewardModelRegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "run" in data:
            registered = reward_model_register_run(run_id=data["run"])
        else:
            registered = reward_model_register_checkpoint(
                name=data["name"], artifact_key=data["artifact_key"],
                dataset_version_id=data.get("dataset_version"), metrics=data.get("metrics"),
            )  # fmt: skip
        code = status.HTTP_201_CREATED if registered.created else status.HTTP_200_OK
        return Response(RewardModelSerializer(registered.model).data, status=code)


class RewardModelDetailApi(APIView):
    @extend_schema(
        operation_id="reward_model_detail", responses={200: RewardModelSerializer, **ERRORS}
    )
    def get(self, request: Request, model_id: int) -> Response:
        return Response(RewardModelSerializer(reward_model_get(model_id=model_id)).data)


class RewardModelCurrentApi(APIView):
    """The promoted model of a name: what /api/reward/score serves now."""

    @extend_schema(
        operation_id="reward_model_current",
        parameters=[RewardCurrentQuerySerializer],
        responses={200: RewardModelSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = RewardCurrentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        name = query.validated_data.get("name") or reward_model_default_name()
        model = reward_model_promoted(name=name)
        if model is None:
            raise NotFound(f"no version of {name!r} is promoted", field="name")
        return Response(RewardModelSerializer(model).data)


class RewardModelPromoteApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="reward_model_promote",
        request=RewardPromoteRequestSerializer,
        responses={200: RewardModelSerializer, **PROMOTE_ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        body = RewardPromoteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        model = reward_model_promote(model_id=model_id, confirm=body.validated_data["confirm"])
        return Response(RewardModelSerializer(model).data)


class RewardModelArchiveApi(APIView):
    @extend_schema(
        operation_id="reward_model_archive",
        request=None,
        responses={200: RewardModelSerializer, **ERRORS},
    )
    def post(self, request: Request, model_id: int) -> Response:
        return Response(RewardModelSerializer(reward_model_archive(model_id=model_id)).data)


def _version_ref(version) -> dict[str, Any]:
    return {"id": version.pk, "dataset": version.dataset.name, "number": version.number}


def comparison_data(comparison: Comparison) -> dict[str, Any]:
    return {
        "dataset_version": _version_ref(comparison.version),
        "split": "test",
        "test_pairs": comparison.test_pairs,
        "candidate": comparison.candidate_id,
        "model_a": RewardModelSerializer(comparison.model_a).data,
        "model_b": RewardModelSerializer(comparison.model_b).data,
        "ready": comparison.ready,
        "pending": comparison.pending,
        "rows": comparison.rows,
        "evaluation_a": comparison.evaluation_a,
        "evaluation_b": comparison.evaluation_b,
    }  # fmt: skip


class RewardModelCompareApi(APIView):
    """Two models side by side on a frozen version's test split (pairwise accuracy, Pick-a-Pic
    tie rule; overall, by relation, by number of perturbations, by config)."""

    @extend_schema(
        operation_id="reward_models_compare",
        request=RewardCompareRequestSerializer,
        responses={
            200: OpenApiResponse(RewardComparisonSerializer, description="The table."),
            202: OpenApiResponse(
                RewardComparisonSerializer, description="Evaluating on the cpu queue; ask again."
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = RewardCompareRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        comparison = reward_models_compare(
            model_a_id=data["model_a"], model_b_id=data["model_b"],
            version_id=data.get("dataset_version"), refresh=data["refresh"],
        )  # fmt: skip
        code = status.HTTP_200_OK if comparison.ready else status.HTTP_202_ACCEPTED
        return Response(comparison_data(comparison), status=code)


def evaluation_data(found: ModelEvaluation) -> dict[str, Any]:
    return {
        "model": RewardModelSerializer(found.model).data,
        "dataset_version": _version_ref(found.version),
        "split": "test",
        "test_pairs": found.test_pairs,
        "ready": not found.pending,
        "rows": found.rows,
        "evaluation": found.evaluation,
    }


class RewardModelEvaluateApi(APIView):
    """One model's pairwise accuracy on a frozen version's test split, overall and per relation
    key of the judged prompts, each with its Wilson 95% interval (stored on the model; computed
    now for a small split, on the cpu queue for a large one)."""

    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="reward_model_evaluate",
        request=RewardEvaluateRequestSerializer,
        responses={
            200: OpenApiResponse(RewardEvaluationSerializer, description="The accuracies."),
            202: OpenApiResponse(
                RewardEvaluationSerializer, description="Evaluating on the cpu queue; ask again."
            ),
            **ERRORS,
            **JSON_ONLY,
        },
    )
    def post(self, request: Request, model_id: int) -> Response:
        body = RewardEvaluateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        found = reward_model_evaluation(
            model_id=model_id, version_id=body.validated_data.get("dataset_version"),
            refresh=body.validated_data["refresh"],
        )  # fmt: skip
        code = status.HTTP_202_ACCEPTED if found.pending else status.HTTP_200_OK
        return Response(evaluation_data(found), status=code)
