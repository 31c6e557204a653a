"""The scoring request read and answered: one reader and one answer for `POST /api/reward/score`,
its enqueue/poll pair (`score_jobs.py`) and the trainers' adapters (`adapters.py`).

Forms: JSON `{"items": [{"prompt", "image" (base64) | "candidate" (id)}]}`, the group form
`{"groups": [{"prompt", "items": [...]}], "top_k": 6}`, the pairwise form `{"pairs": [{"prompt",
"a": {...}, "b": {...}}]}` (optional `model` name, `version` pin, `all_or_nothing`), or
multipart/form-data (`image` files, `prompt` once or per image, optional `group` label per
image, `model`, `version`, `top_k`, `all_or_nothing`). Every limit of `scoring.payloads` is
applied before anything heavy runs: pickles are never read (415), too many images, bytes or
pixels get a 413, malformed input a 400, each naming the field.

An upload whose header reads but whose pixels cannot be decoded fails only its own item (its
entry carries `error`, `field` and `detail`, no mean), unless the request says
`"all_or_nothing": true`: then the whole request is a 400 naming that image's field.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework.request import Request

from config.errors import ValidationFailed
from config.input_checks import query_integer_read
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
    ScoredImage,
    ScoreInput,
    ScoreResult,
    reward_score,
    reward_score_groups,
    reward_score_pairs,
)

BODY_KEYS = frozenset({"model", "version", "items", "groups", "pairs", "top_k", "all_or_nothing"})
FORMS = ("items", "groups", "pairs")
GROUP_KEYS = frozenset({"prompt", "items"})
PAIR_KEYS = frozenset({"prompt", "a", "b"})
ITEM_KEYS = frozenset({"prompt", "image", "candidate"})
UNDECODABLE = "undecodable"  # the per-item error code


@dataclass
class ScoreRequest:
    """A read request: its inputs in one of the three forms, and the options."""

    name: str | None = None
    version: int | None = None
    items: list[ScoreInput] | None = None
    groups: list[list[ScoreInput]] | None = None
    pairs: list[tuple[ScoreInput, ScoreInput]] | None = None
    top_k: int | None = None
    all_or_nothing: bool = False
    image_suffix: str = ".image"  # JSON fields name the item; its image is `<item>.image`
    started: float = field(default_factory=time.monotonic)

    def flat(self) -> list[ScoreInput]:
        """The inputs in the order they are scored."""
        if self.items is not None:
            return self.items
        if self.groups is not None:
            return [item for group in self.groups for item in group]
        return [item for pair in self.pairs or [] for item in pair]

    def image_field(self, position: int) -> str:
        return f"{self.flat()[position].field}{self.image_suffix}"


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed("must be a positive integer", field=field)
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("must be true or false", field=field)
    return value


def _keys_check(raw: Any, allowed: frozenset[str], field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed("must be a JSON object", field=field)
    if not raw.keys() <= allowed:
        unknown = sorted(raw.keys() - allowed)
        name = f"{field}.{unknown[0]}" if field != "body" else unknown[0]
        raise ValidationFailed("unknown key", field=name)
    return raw


def item_input(raw: Any, field: str, default_prompt: str | None, limits: ScoreLimits):
    """One JSON item (`{"prompt", "image" | "candidate"}`) read and checked."""
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
    image = upload_open(raw["image"], limits, field=f"{field}.image")
    return ScoreInput(field=field, prompt=prompt, image=image)


def upload_open(value: Any, limits: ScoreLimits, *, field: str):
    """A base64 image (or data: URL) decoded and opened (header checked, pixels not yet)."""
    return image_open(image_b64_decode(value, limits, field=field), limits, field=field)


def _list(raw: Any, field: str) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("must be a non-empty list", field=field)
    return raw


def _raw_count(body: dict[str, Any]) -> int:
    """Images in a JSON body before anything else is checked (an oversized batch first)."""
    count = 0
    items, groups, pairs = body.get("items"), body.get("groups"), body.get("pairs")
    count += len(items) if isinstance(items, list) else 0
    count += 2 * len(pairs) if isinstance(pairs, list) else 0
    if isinstance(groups, list):
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("items"), list):
                count += len(group["items"])
    return count


def _json_request(request: Request, limits: ScoreLimits) -> ScoreRequest:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("the request body is too large", field="body") from None
    body = _keys_check(json_body_load(raw), BODY_KEYS, "body")
    given = [form for form in FORMS if form in body]
    form = given[0] if given else "items"
    images_count_check(_raw_count(body), limits, field=form)
    if len(given) != 1:
        raise ValidationFailed("give exactly one of `items`, `groups` and `pairs`", field=form)
    out = ScoreRequest(name=model_name_check(body.get("model")))
    if body.get("version") is not None:
        out.version = _positive_int(body["version"], "version")
    if "all_or_nothing" in body:
        out.all_or_nothing = _bool(body["all_or_nothing"], "all_or_nothing")
    if form != "groups" and "top_k" in body:
        raise ValidationFailed("only with groups", field="top_k")
    if form == "items":
        items = _list(body["items"], "items")
        out.items = [item_input(raw, f"items[{i}]", None, limits) for i, raw in enumerate(items)]
        return out
    if form == "pairs":
        out.pairs = []
        for k, raw in enumerate(_list(body["pairs"], "pairs")):
            pair = _keys_check(raw, PAIR_KEYS, f"pairs[{k}]")
            prompt = pair.get("prompt")
            if prompt is not None:
                prompt = prompt_check(prompt, limits, field=f"pairs[{k}].prompt")
            for side in ("a", "b"):
                if side not in pair:
                    raise ValidationFailed("both `a` and `b` are needed", field=f"pairs[{k}]")
            out.pairs.append(
                (item_input(pair["a"], f"pairs[{k}].a", prompt, limits),
                 item_input(pair["b"], f"pairs[{k}].b", prompt, limits))
            )  # fmt: skip
        return out
    out.groups = []
    for g, raw in enumerate(_list(body["groups"], "groups")):
        group = _keys_check(raw, GROUP_KEYS, f"groups[{g}]")
        items = _list(group.get("items"), f"groups[{g}].items")
        prompt = group.get("prompt")
        if prompt is not None:
            prompt = prompt_check(prompt, limits, field=f"groups[{g}].prompt")
        out.groups.append(
            [item_input(item, f"groups[{g}].items[{i}]", prompt, limits)
             for i, item in enumerate(items)]
        )  # fmt: skip
    if body.get("top_k") is not None:
        out.top_k = _positive_int(body["top_k"], "top_k")
    return out


def _multipart_request(request: Request, limits: ScoreLimits) -> ScoreRequest:
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
    out = ScoreRequest(name=model_name_check(form.get("model") or None), image_suffix="")
    if form.get("version") not in (None, ""):
        out.version = query_integer_read(form.get("version"), field="version", minimum=1)
    flag = form.get("all_or_nothing")
    if flag not in (None, ""):
        if flag.lower() not in ("true", "false", "1", "0"):
            raise ValidationFailed("must be true or false", field="all_or_nothing")
        out.all_or_nothing = flag.lower() in ("true", "1")
    top_k = form.get("top_k")
    if not labels:
        if top_k not in (None, ""):
            raise ValidationFailed("only with group labels", field="top_k")
        out.items = inputs
        return out
    if top_k not in (None, ""):
        out.top_k = query_integer_read(top_k, field="top_k", minimum=1)
    grouped: dict[str, list[ScoreInput]] = {}
    for label, item in zip(labels, inputs, strict=True):
        grouped.setdefault(label, []).append(item)
    out.groups = list(grouped.values())
    return out


def score_request_read(request: Request, *, limits: ScoreLimits | None = None) -> ScoreRequest:
    started = time.monotonic()  # duration_ms counts reading the body too
    limits = limits or score_limits()
    kind = content_type_check(request.content_type)
    request_size_check(request.META.get("CONTENT_LENGTH"), limits)
    parsed = (_json_request if kind == "json" else _multipart_request)(request, limits)
    parsed.started = started
    return parsed


def score_run(parsed: ScoreRequest) -> ScoreResult:
    """The request scored by the service of its form. With `all_or_nothing`, an undecodable
    image is a 400 naming its field (`items[3].image`, `groups[1].items[0].image`,
    `image[2]`)."""
    options = {"name": parsed.name, "version": parsed.version,
               "per_item": not parsed.all_or_nothing}  # fmt: skip
    try:
        if parsed.groups is not None:
            return reward_score_groups(groups=parsed.groups, top_k=parsed.top_k, **options)
        if parsed.pairs is not None:
            return reward_score_pairs(pairs=parsed.pairs, **options)
        return reward_score(inputs=parsed.items, **options)
    except ImageUndecodable as exc:  # its header was fine, its pixels are not
        raise ValidationFailed(exc.detail, field=parsed.image_field(exc.position)) from None


def _score_data(score: ScoredImage, field: str) -> dict[str, Any]:
    data: dict[str, Any] = {"mean": score.mean, "std": score.std,
                            "model_version": score.model_version}  # fmt: skip
    if score.failure is not None:
        data["error"] = UNDECODABLE
        data["field"] = field
        data["detail"] = score.failure
    return data


def score_result_data(result: ScoreResult, parsed: ScoreRequest) -> dict[str, Any]:
    """The answer: the model (name, version), each image's mean, std and model version (or its
    per-item error), the form's extras, how many images failed and the time taken."""
    model = result.model
    data: dict[str, Any] = {
        "model": {"id": model.id, "name": model.name, "version": model.version,
                  "backbone": model.backbone, "head": model.head},
    }  # fmt: skip
    entries = [_score_data(s, parsed.image_field(i)) for i, s in enumerate(result.scores)]
    if result.groups is not None:
        start, groups = 0, []
        for group in result.groups:
            scores = entries[start : start + len(group.scores)]
            start += len(group.scores)
            for entry, rank, advantage in zip(scores, group.ranks, group.advantages, strict=True):
                entry["rank"] = rank
                entry["advantage"] = advantage
            groups.append({
                "scores": scores,
                "mean": group.stats.mean if group.stats else None,
                "std": group.stats.std if group.stats else None,
                "ranking": group.ranking, "top": group.top, "bottom": group.bottom,
            })  # fmt: skip
        data["groups"] = groups
    elif result.pairs is not None:
        data["pairs"] = [
            {"a": entries[2 * k], "b": entries[2 * k + 1], "p_a_over_b": pair.p_a_over_b}
            for k, pair in enumerate(result.pairs)
        ]
    else:
        data["scores"] = entries
    data["failed"] = len(result.failed)
    data["duration_ms"] = round((time.monotonic() - parsed.started) * 1000, 1)
    return data
