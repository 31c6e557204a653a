"""Drop-in routes for RL trainers' own reward clients: their request and answer shapes, each a
thin route over the same reader checks, service and engine as `POST /api/reward/score`.

- Flow-Factory (`flow_factory.rewards.my_reward_remote.RemotePointwiseRewardModel`, whose
  `server_url` is `<platform>/api/reward/flow-factory`): `POST .../compute` with
  `{"prompt": [...], "image": [base64 PNG, ...], "video": null, ...}` answered
  `{"rewards": [...]}`, and `GET .../health` (the client checks it once at start: 200 when the
  promoted model can be served, 503 when there is none).
- OpenRLHF (`--remote_rm_url <platform>/api/reward/openrlhf/get_reward`): `POST` with
  `{"query": [base64 image, ...], "prompts": [...], "labels": [...]}` answered
  `{"rewards": [...], "scores": [...], "extra_logs": {"reward_std": [...]}}`. (OpenRLHF's own
  server reads the query as text; here each query is the generated image, its prompt the
  caption.)

Both clients put one float per sample into a tensor, so these routes are all-or-nothing: an
undecodable image is a 400 naming its field (`image[3]`, `query[3]`). Both answers also carry
`model` (name, version) and `duration_ms`. Neither client sets an Authorization header of its
own: both send HTTP Basic credentials given in the URL (`http://token:<API token>@host/...`;
requests also reads ~/.netrc), so these routes take an API token as the Basic password
(`TokenBasicAuthentication`), beside `Authorization: Token <key>`. The role rule is the
scoring API's (ML engineers and admins).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from config.errors import ValidationFailed
from config.parsers import JSONParser
from training_bridge.reward_models.apis.registry import RewardErrorSerializer
from training_bridge.reward_models.apis.score_requests import (
    ScoreRequest,
    score_run,
    upload_open,
)
from training_bridge.reward_models.apis.scoring import SCORE_ERRORS, RetryAfterMixin
from training_bridge.reward_models.scoring.payloads import (
    PayloadTooLarge,
    UnsupportedPayload,
    content_type_check,
    images_count_check,
    json_body_load,
    model_name_check,
    prompt_check,
    request_size_check,
    score_limits,
)
from training_bridge.reward_models.services.scoring import (
    ScoreInput,
    ScoreResult,
    scoring_status,
)


class TokenBasicAuthentication(ApiTokenAuthentication):
    """HTTP Basic whose password is an API token (the user name is not read), checked and
    remembered as `Authorization: Token <key>` is."""

    keyword = "Basic"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != b"basic":
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid basic header.")
        try:
            _, sep, key = base64.b64decode(auth[1], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Invalid basic header.") from None
        if not sep or not key:
            raise exceptions.AuthenticationFailed("Invalid basic header. No token as password.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request) -> str:
        return 'Basic realm="api"'


class TokenBasicScheme(OpenApiAuthenticationExtension):
    target_class = TokenBasicAuthentication
    name = "tokenBasicAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Any user name, an API token as the password (credentials in the URL)",
        }


ADAPTER_AUTH = [ApiTokenAuthentication, TokenBasicAuthentication, SessionAuthentication]


def _body(request: Request) -> dict[str, Any]:
    limits = score_limits()
    if content_type_check(request.content_type) != "json":
        raise UnsupportedPayload("send application/json", field="content_type")
    request_size_check(request.META.get("CONTENT_LENGTH"), limits)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("the request body is too large", field="body") from None
    body = json_body_load(raw)
    if not isinstance(body, dict):
        raise ValidationFailed("must be a JSON object", field="body")
    return body


def _one_of(body: dict[str, Any], names: tuple[str, str]) -> tuple[str, Any]:
    """The key given of two spellings (`prompt` / `prompts`)."""
    given = [name for name in names if body.get(name) is not None]
    if len(given) != 1:
        raise ValidationFailed(f"give exactly one of `{names[0]}` and `{names[1]}`",
                               field=names[0])  # fmt: skip
    return given[0], body[given[0]]


def _texts(value: Any, count: int, field: str, limits) -> list[str]:
    """One prompt for all images, or a list with one per image."""
    if isinstance(value, str):
        return [prompt_check(value, limits, field=field)] * count
    if not isinstance(value, list) or len(value) != count:
        raise ValidationFailed(f"a string or a list of {count} prompts (one per image)",
                               field=field)  # fmt: skip
    return [prompt_check(text, limits, field=f"{field}[{i}]") for i, text in enumerate(value)]


def _adapter_request(
    body: dict[str, Any], *, images_key: str, images: Any, prompts_key: str, prompts: Any
) -> ScoreRequest:
    limits = score_limits()
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list):
        raise ValidationFailed("a list of base64 PNG, JPEG or WebP images", field=images_key)
    images_count_check(len(images), limits, field=images_key)
    captions = _texts(prompts, len(images), prompts_key, limits)
    items = [
        ScoreInput(field=f"{images_key}[{i}]", prompt=caption,
                   image=upload_open(data, limits, field=f"{images_key}[{i}]"))
        for i, (caption, data) in enumerate(zip(captions, images, strict=True))
    ]  # fmt: skip
    return ScoreRequest(
        name=model_name_check(body.get("model")), items=items, all_or_nothing=True,
        image_suffix="",
    )  # fmt: skip


def _model(result: ScoreResult) -> dict[str, Any]:
    return {"name": result.model.name, "version": result.model.version, "id": result.model.id}


def _duration_ms(parsed: ScoreRequest) -> float:
    return round((time.monotonic() - parsed.started) * 1000, 1)


FLOW_FACTORY_KEYS = frozenset(
    {"prompt", "prompts", "image", "images", "video", "condition_images", "condition_videos",
     "extra", "model"}
)  # fmt: skip


def flow_factory_request_read(request: Request) -> ScoreRequest:
    body = _body(request)
    unknown = sorted(body.keys() - FLOW_FACTORY_KEYS)
    if unknown:
        raise ValidationFailed("unknown key", field=unknown[0])
    for name in ("video", "condition_images", "condition_videos"):
        if body.get(name):
            raise ValidationFailed("this reward model scores images only", field=name)
    images_key, images = _one_of(body, ("image", "images"))
    prompts_key, prompts = _one_of(body, ("prompt", "prompts"))
    return _adapter_request(body, images_key=images_key, images=images,
                            prompts_key=prompts_key, prompts=prompts)  # fmt: skip


OPENRLHF_KEYS = frozenset({"query", "prompts", "labels", "model"})


def openrlhf_request_read(request: Request) -> ScoreRequest:
    body = _body(request)
    unknown = sorted(body.keys() - OPENRLHF_KEYS)
    if unknown:
        raise ValidationFailed("unknown key", field=unknown[0])
    if body.get("query") is None:
        raise ValidationFailed("a list of base64 images (the generated samples)", field="query")
    if body.get("prompts") is None:
        raise ValidationFailed("a list of prompts, one per query", field="prompts")
    return _adapter_request(body, images_key="query", images=body["query"],
                            prompts_key="prompts", prompts=body["prompts"])  # fmt: skip


_REWARDS = serializers.ListField(child=serializers.FloatField())
_MODEL = inline_serializer(
    "RewardAdapterModel",
    {"id": serializers.IntegerField(), "name": serializers.CharField(),
     "version": serializers.IntegerField()},
)  # fmt: skip


class FlowFactoryComputeApi(RetryAfterMixin, APIView):
    """Flow-Factory's `RemoteRewardClient.compute`: one reward per (prompt, image)."""

    authentication_classes = ADAPTER_AUTH
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="reward_flow_factory_compute",
        request=inline_serializer(
            "FlowFactoryComputeRequest",
            {"prompt": serializers.ListField(child=serializers.CharField()),
             "image": serializers.ListField(child=serializers.CharField(),
                                            help_text="base64 PNG, JPEG or WebP"),
             "model": serializers.CharField(required=False)},
        ),
        responses={200: inline_serializer(
            "FlowFactoryComputeResponse",
            {"rewards": _REWARDS, "model": _MODEL, "duration_ms": serializers.FloatField()},
        ), **SCORE_ERRORS},
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        parsed = flow_factory_request_read(request)
        result = score_run(parsed)
        return Response({"rewards": [s.mean for s in result.scores], "model": _model(result),
                         "duration_ms": _duration_ms(parsed)})  # fmt: skip


class FlowFactoryHealthApi(APIView):
    """Flow-Factory's `RemoteRewardClient.health_check`: 200 when the promoted model can be
    served (`loaded`: already in this process's memory), 503 when there is none."""

    authentication_classes = ADAPTER_AUTH

    @extend_schema(
        operation_id="reward_flow_factory_health",
        responses={
            200: inline_serializer(
                "RewardHealth",
                {"status": serializers.CharField(), "model": _MODEL,
                 "loaded": serializers.BooleanField()},
            ),
            503: OpenApiResponse(RewardErrorSerializer, description="No promoted model."),
        },
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        status = scoring_status()
        if status.ref is None:
            return Response({"error": "unavailable", "detail": status.detail}, status=503,
                            headers={"Retry-After": "30"})  # fmt: skip
        ref = status.ref
        model = {"id": ref.id, "name": ref.name, "version": ref.version}
        return Response({"status": "ok", "loaded": status.loaded, "model": model})


class OpenRlhfRewardApi(RetryAfterMixin, APIView):
    """OpenRLHF's remote reward model request (`--remote_rm_url`)."""

    authentication_classes = ADAPTER_AUTH
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="reward_openrlhf_get_reward",
        request=inline_serializer(
            "OpenRlhfRewardRequest",
            {"query": serializers.ListField(child=serializers.CharField(),
                                            help_text="base64 images"),
             "prompts": serializers.ListField(child=serializers.CharField()),
             "labels": serializers.ListField(required=False, help_text="Not read.")},
        ),
        responses={200: inline_serializer(
            "OpenRlhfRewardResponse",
            {"rewards": _REWARDS, "scores": _REWARDS, "extra_logs": serializers.DictField(),
             "model": _MODEL, "duration_ms": serializers.FloatField()},
        ), **SCORE_ERRORS},
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        parsed = openrlhf_request_read(request)
        result = score_run(parsed)
        rewards = [s.mean for s in result.scores]
        return Response({"rewards": rewards, "scores": rewards,
                         "extra_logs": {"reward_std": [s.std for s in result.scores]},
                         "model": _model(result), "duration_ms": _duration_ms(parsed)})  # fmt: skip
