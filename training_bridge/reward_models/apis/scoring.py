"""`POST /api/reward/score`: what RL trainers call (token auth: `Authorization: Token <key>`,
ML role, both remembered per process for AUTH_REMEMBER_SECONDS; annotators get a 403).

Request forms: JSON `{"items": [{"prompt", "image" (base64) | "candidate" (id)}]}` or the group
form `{"groups": [{"prompt", "items": [...]}], "top_k": 6}` (optional `model` name, `version`
pin), or multipart/form-data (`image` files, `prompt` once or per image, optional `group` label
per image, `model`, `version`, `top_k`). Every limit of `scoring.payloads` is applied before
anything heavy runs: pickles are never read (415), too many images, bytes or pixels get a 413,
malformed input a 400, each naming the field. The answer: mean, std and model version per image;
in the group form also each group's ranking (best first), ranks, top-k and bottom-k.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from config.errors import ValidationFailed
from config.input_checks import query_integer_read
from config.parsers import JSONParser, MultiPartParser
from training_bridge.reward_models.apis.registry import ERRORS, RewardErrorSerializer
from training_bridge.reward_models.scoring.payloads import (
    ImageUndecodable,
    PayloadTooLarge,
    ScoreLimits,
    content_type_check,
    image_b64_decode,
    image_open,
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
    reward_score,
    reward_score_groups,
)

BODY_KEYS = frozenset({"model", "version", "items", "groups", "top_k"})
GROUP_KEYS = frozenset({"prompt", "items"})
ITEM_KEYS = frozenset({"prompt", "image", "candidate"})

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


class RewardScoreRequestSerializer(serializers.Serializer):
    model = serializers.CharField(
        required=False, max_length=100, help_text="Model name; its promoted version is served."
    )
    version = serializers.IntegerField(required=False, min_value=1, help_text="Pin a version.")
    items = RewardScoreItemSerializer(many=True, required=False, allow_empty=False)
    groups = RewardScoreGroupSerializer(many=True, required=False, allow_empty=False)
    top_k = serializers.IntegerField(required=False, min_value=1, help_text="Groups only.")


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


class RewardModelRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    backbone = serializers.CharField(help_text="builtin | clip")
    head = serializers.CharField(help_text="scalar | gaussian")


class RewardScoreSerializer(serializers.Serializer):
    mean = serializers.FloatField()
    std = serializers.FloatField(allow_null=True, help_text="null for a scalar head.")
    model_version = serializers.IntegerField()
    rank = serializers.IntegerField(required=False, help_text="In its group: 1 = best.")


class RewardGroupResultSerializer(serializers.Serializer):
    scores = RewardScoreSerializer(many=True)
    ranking = serializers.ListField(
        child=serializers.IntegerField(), help_text="Positions in the group, best first."
    )
    top = serializers.ListField(child=serializers.IntegerField(), help_text="The top-k.")
    bottom = serializers.ListField(
        child=serializers.IntegerField(), help_text="The bottom-k, worst last."
    )


class RewardScoreResponseSerializer(serializers.Serializer):
    model = RewardModelRefSerializer()
    scores = RewardScoreSerializer(many=True, required=False, help_text="The items form.")
    groups = RewardGroupResultSerializer(many=True, required=False, help_text="The groups form.")


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed("must be a positive integer", field=field)
    return value


def _keys_check(raw: Any, allowed: frozenset[str], field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed("must be a JSON object", field=field)
    if not raw.keys() <= allowed:
        unknown = sorted(raw.keys() - allowed)
        name = f"{field}.{unknown[0]}" if field != "body" else unknown[0]
        raise ValidationFailed("unknown key", field=name)
    return raw


def _item_input(raw: Any, field: str, default_prompt: str | None, limits: ScoreLimits):
    raw = _keys_check(raw, ITEM_KEYS, field)
    if ("image" in raw) == ("candidate" in raw):
        raise ValidationFailed("give exactly one of `image` and `candidate`", field=field)
    prompt = raw.get("prompt", default_prompt)
    if prompt is not None:
        prompt = prompt_check(prompt, limits, field=f"{field}.prompt")
    if "candidate" in raw:
        candidate = _positive_int(raw["candidate"], f"{field}.candidate")
        return ScoreInput(field=field, prompt=prompt, candidate_id=candidate)
    if prompt is None:
        raise ValidationFailed("a prompt is needed with an uploaded image", field=f"{field}.prompt")
    data = image_b64_decode(raw["image"], limits, field=f"{field}.image")
    image = image_open(data, limits, field=f"{field}.image")
    return ScoreInput(field=field, prompt=prompt, image=image)


def _list(raw: Any, field: str) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("must be a non-empty list", field=field)
    return raw


def _raw_count(body: dict[str, Any]) -> int:
    """Images in a JSON body before anything else is checked (an oversized batch first)."""
    items, groups = body.get("items"), body.get("groups")
    count = len(items) if isinstance(items, list) else 0
    if isinstance(groups, list):
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("items"), list):
                count += len(group["items"])
    return count


def _json_request(request: Request, limits: ScoreLimits) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("the request body is too large", field="body") from None
    body = json_body_load(raw)
    body = _keys_check(body, BODY_KEYS, "body")
    form = "groups" if "groups" in body else "items"
    images_count_check(_raw_count(body), limits, field=form)
    if ("items" in body) == ("groups" in body):
        raise ValidationFailed("give exactly one of `items` and `groups`", field="items")
    options: dict[str, Any] = {"name": model_name_check(body.get("model")), "version": None}
    if body.get("version") is not None:
        options["version"] = _positive_int(body["version"], "version")
    if form == "items":
        if "top_k" in body:
            raise ValidationFailed("only with groups", field="top_k")
        items = _list(body["items"], "items")
        inputs = [_item_input(raw, f"items[{i}]", None, limits) for i, raw in enumerate(items)]
        return {**options, "items": inputs}
    groups = []
    for g, raw in enumerate(_list(body["groups"], "groups")):
        group = _keys_check(raw, GROUP_KEYS, f"groups[{g}]")
        items = _list(group.get("items"), f"groups[{g}].items")
        prompt = group.get("prompt")
        if prompt is not None:
            prompt = prompt_check(prompt, limits, field=f"groups[{g}].prompt")
        groups.append(
            [_item_input(item, f"groups[{g}].items[{i}]", prompt, limits)
             for i, item in enumerate(items)]
        )  # fmt: skip
    top_k = _positive_int(body["top_k"], "top_k") if body.get("top_k") is not None else None
    return {**options, "groups": groups, "top_k": top_k}


def _multipart_request(request: Request, limits: ScoreLimits) -> dict[str, Any]:
    try:
        form, files = request.data, request.FILES
    except (RequestDataTooBig, TooManyFilesSent, TooManyFieldsSent) as exc:
        raise PayloadTooLarge(f"the form is too large: {exc}", field="image") from None
    uploads = files.getlist("image")
    images_count_check(len(uploads), limits, field="image")
    prompts = form.getlist("prompt")
    if len(prompts) not in (1, len(uploads)):
        raise ValidationFailed(
            f"give one prompt for all images or one per image ({len(uploads)}), not {len(prompts)}",
            field="prompt",
        )
    labels = form.getlist("group")
    if labels and len(labels) != len(uploads):
        raise ValidationFailed(f"one group label per image ({len(uploads)})", field="group")
    inputs = []
    for i, upload in enumerate(uploads):
        field = f"image[{i}]"
        if upload.size > limits.max_image_bytes:
            raise PayloadTooLarge(
                f"the image has {upload.size} bytes; at most {limits.max_image_bytes} per image",
                field=field,
            )
        prompt = prompt_check(prompts[i if len(prompts) > 1 else 0], limits, field="prompt")
        image = image_open(upload.read(), limits, field=field)
        inputs.append(ScoreInput(field=field, prompt=prompt, image=image))
    options: dict[str, Any] = {"name": model_name_check(form.get("model") or None), "version": None}
    for key in ("version", "top_k"):
        value = form.get(key)
        if value not in (None, ""):
            options[key] = query_integer_read(value, field=key, minimum=1)
    if not labels:
        if options.pop("top_k", None) is not None:
            raise ValidationFailed("only with group labels", field="top_k")
        return {**options, "items": inputs}
    grouped: dict[str, list[ScoreInput]] = {}
    for label, item in zip(labels, inputs, strict=True):
        grouped.setdefault(label, []).append(item)
    return {**options, "groups": list(grouped.values())}


def score_result_data(result: ScoreResult) -> dict[str, Any]:
    model = result.model
    data: dict[str, Any] = {
        "model": {"id": model.id, "name": model.name, "version": model.version,
                  "backbone": model.backbone, "head": model.head},
    }  # fmt: skip
    if result.groups is None:
        data["scores"] = [
            {"mean": s.mean, "std": s.std, "model_version": s.model_version} for s in result.scores
        ]
        return data
    data["groups"] = [
        {
            "scores": [
                {"mean": s.mean, "std": s.std, "model_version": s.model_version, "rank": rank}
                for s, rank in zip(group.scores, group.ranking.ranks, strict=True)
            ],
            "ranking": group.ranking.ranking,
            "top": group.ranking.top,
            "bottom": group.ranking.bottom,
        }
        for group in result.groups
    ]
    return data


def score_request_read(request: Request) -> dict[str, Any]:
    """{"name", "version", "items": [...]} or {..., "groups": [[...], ...], "top_k"}."""
    limits = score_limits()
    kind = content_type_check(request.content_type)
    request_size_check(request.META.get("CONTENT_LENGTH"), limits)
    if kind == "json":
        return {**_json_request(request, limits), "image_suffix": ".image"}
    return {**_multipart_request(request, limits), "image_suffix": ""}


def _image_field(parsed: dict[str, Any], position: int) -> str:
    """The request field of the image at `position` among the scored images (groups in order,
    as the service scores them)."""
    flat = parsed["items"] if "items" in parsed else [i for g in parsed["groups"] for i in g]
    return f"{flat[position].field}{parsed['image_suffix']}"


SCORE_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(
        RewardErrorSerializer, description="No promoted model for the name, or it cannot load."
    ),
    413: OpenApiResponse(
        RewardErrorSerializer, description="Too many images, bytes or pixels; `field` names it."
    ),
    415: OpenApiResponse(
        RewardErrorSerializer,
        description="Not JSON or multipart/form-data; pickles are never accepted.",
    ),
}


class RewardScoreApi(APIView):
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
        try:
            if "groups" in parsed:
                result = reward_score_groups(
                    groups=parsed["groups"], name=parsed["name"], version=parsed["version"],
                    top_k=parsed.get("top_k"),
                )  # fmt: skip
            else:
                result = reward_score(
                    inputs=parsed["items"], name=parsed["name"], version=parsed["version"]
                )
        except ImageUndecodable as exc:  # its header was fine, its pixels are not
            field = _image_field(parsed, exc.position)
            raise ValidationFailed(exc.detail, field=field) from None
        return Response(score_result_data(result))
