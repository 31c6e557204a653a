"""`POST /api/reward/score`: what RL trainers call (token auth: `Authorization: Token <key>`,
ML role, both remembered per process for AUTH_REMEMBER_SECONDS; annotators get a 403).

The request forms and their checks: `score_requests.py` (items, groups, pairs; JSON or
multipart). The answer: the model (id, name, version, backbone, head), `duration_ms`, `failed`
(images that could not be decoded: each has `error`, `field` and `detail` in its place unless
`all_or_nothing` made the request a 400), mean, std and model version per image; in the group
form also each image's rank and advantage and each group's mean, std, ranking (best first),
top-k and bottom-k; in the pairwise form P(a preferred over b) per pair.

Errors: 4xx for what a retry cannot fix (the field named), 503 with Retry-After for what it
can (`services/scoring.py`). The trainers' own request shapes: `adapters.py`; the enqueue/poll
pair for large batches: `score_jobs.py`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from config.parsers import JSONParser, MultiPartParser
from training_bridge.reward_models.apis.registry import ERRORS, RewardErrorSerializer
from training_bridge.reward_models.apis.score_requests import (
    score_request_read,
    score_result_data,
    score_run,
)


class RetryAfterMixin:
    """A retryable error (`retry_after_seconds` on the domain error: a busy engine, a
    checkpoint's storage not answering) leaves with a Retry-After header."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        seconds = getattr(exc, "retry_after_seconds", None)
        if seconds is not None and response is not None:
            response["Retry-After"] = str(seconds)
        return response


# The serializers describe the forms in the OpenAPI schema; the checks themselves are below
# (limits first, then shape), so that errors name fields as JSON paths: items[3].image.


class RewardScoreItemSerializer(serializers.Serializer):
    prompt = serializers.CharField(
        required=False, trim_whitespace=False, help_text="Default: the group's, or the candidate's."
    )
    image = serializers.CharField(
        required=False, trim_whitespace=False, help_text="PNG, JPEG or WebP bytes as base64."
    )
    candidate = serializers.IntegerField(required=False, min_value=1, help_text="A candidate id.")


class RewardScoreGroupSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False, trim_whitespace=False)
    items = RewardScoreItemSerializer(many=True, allow_empty=False)


class RewardScorePairSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False, trim_whitespace=False)
    a = RewardScoreItemSerializer()
    b = RewardScoreItemSerializer()


class RewardScoreRequestSerializer(serializers.Serializer):
    model = serializers.CharField(
        required=False, max_length=100, help_text="Model name; its promoted version is served."
    )
    version = serializers.IntegerField(required=False, min_value=1, help_text="Pin a version.")
    items = RewardScoreItemSerializer(many=True, required=False, allow_empty=False)
    groups = RewardScoreGroupSerializer(many=True, required=False, allow_empty=False)
    pairs = RewardScorePairSerializer(many=True, required=False, allow_empty=False)
    top_k = serializers.IntegerField(required=False, min_value=1, help_text="Groups only.")
    all_or_nothing = serializers.BooleanField(
        required=False,
        default=False,
        help_text="An undecodable image makes the request a 400 instead of failing its item.",
    )


class RewardScoreMultipartSerializer(serializers.Serializer):
    image = serializers.ListField(
        child=serializers.FileField(), help_text="Image files (PNG, JPEG, WebP), in order."
    )
    prompt = serializers.ListField(
        child=serializers.CharField(), help_text="One prompt for all images, or one per image."
    )
    group = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="One label per image: images with the same label form a group.",
    )
    model = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False)
    top_k = serializers.IntegerField(required=False)
    all_or_nothing = serializers.BooleanField(required=False)


class RewardModelRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    backbone = serializers.CharField(help_text="builtin | clip")
    head = serializers.CharField(help_text="scalar | gaussian")


class RewardScoreSerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True, help_text="null when the image failed.")
    std = serializers.FloatField(allow_null=True, help_text="null for a scalar head.")
    model_version = serializers.IntegerField()
    rank = serializers.IntegerField(
        required=False, allow_null=True, help_text="In its group: 1 = best."
    )
    advantage = serializers.FloatField(
        required=False, allow_null=True, help_text="(mean - group mean) / group std; 0 if std 0."
    )
    error = serializers.CharField(required=False, help_text="Per item: `undecodable`.")
    field = serializers.CharField(required=False, help_text="The failed image's request field.")
    detail = serializers.CharField(required=False)


class RewardGroupResultSerializer(serializers.Serializer):
    scores = RewardScoreSerializer(many=True)
    ranking = serializers.ListField(
        child=serializers.IntegerField(), help_text="Positions in the group, best first."
    )
    top = serializers.ListField(child=serializers.IntegerField(), help_text="The top-k.")
    bottom = serializers.ListField(
        child=serializers.IntegerField(), help_text="The bottom-k, worst last."
    )
    mean = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True, help_text="Population std of the means.")


class RewardPairResultSerializer(serializers.Serializer):
    a = RewardScoreSerializer()
    b = RewardScoreSerializer()
    p_a_over_b = serializers.FloatField(
        allow_null=True, help_text="Phi((mean_a - mean_b) / sqrt(std_a^2 + std_b^2))."
    )


class RewardScoreResponseSerializer(serializers.Serializer):
    model = RewardModelRefSerializer()
    scores = RewardScoreSerializer(many=True, required=False, help_text="The items form.")
    groups = RewardGroupResultSerializer(many=True, required=False, help_text="The groups form.")
    pairs = RewardPairResultSerializer(many=True, required=False, help_text="The pairs form.")
    failed = serializers.IntegerField(help_text="Images that could not be decoded.")
    duration_ms = serializers.FloatField()


SCORE_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(
        RewardErrorSerializer, description="No promoted model for the name, or it cannot load."
    ),
    503: OpenApiResponse(
        RewardErrorSerializer,
        description="Retryable (Retry-After): the server is busy or the model's storage is not "
        "answering.",
    ),
    413: OpenApiResponse(
        RewardErrorSerializer, description="Too many images, bytes or pixels; `field` names it."
    ),
    415: OpenApiResponse(
        RewardErrorSerializer,
        description="Not JSON or multipart/form-data; pickles are never accepted.",
    ),
}


class RewardScoreApi(RetryAfterMixin, APIView):
    """Score (prompt, image) pairs with the promoted reward model (or a pinned version)."""

    # The token first: a request without credentials gets a 401 asking for one.
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="reward_score",
        request={
            "application/json": RewardScoreRequestSerializer,
            "multipart/form-data": RewardScoreMultipartSerializer,
        },
        responses={200: RewardScoreResponseSerializer, **SCORE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        parsed = score_request_read(request)
        return Response(score_result_data(score_run(parsed), parsed))
