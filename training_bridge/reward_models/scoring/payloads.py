"""The scoring request's checks: content types, sizes, base64 and image bytes. No torch.

RL trainers' own reward servers (Flow-GRPO, DDPO) send pickled payloads; this API never
unpickles anything: only JSON (images as base64) and multipart/form-data (images as files)
are read, a pickle content type or a body that starts like a pickle is refused with a 415
that says so, and every image is opened by Pillow as PNG, JPEG or WebP only, its size checked
before its pixels are decoded. The pixels are decoded once, by the scoring engine into the
network's input (`engine.py`); an image whose pixels cannot be decoded is `ImageUndecodable`
there, which the API reports as a 400 naming the image's field.

Limits come from the settings (defaults in brackets): REWARD_SCORE_MAX_IMAGES [128] per
request, REWARD_SCORE_MAX_IMAGE_BYTES [4 MiB] per image, REWARD_SCORE_MAX_REQUEST_BYTES
[32 MiB] per request body, REWARD_SCORE_MAX_PIXELS [4096 x 4096] per image,
REWARD_SCORE_MAX_PROMPT_CHARS [4000]. Over a limit: 413 naming the field.
"""

from __future__ import annotations

import binascii
import io
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from config.errors import DomainError, ValidationFailed
from config.input_checks import json_loads, text_check

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
PICKLE_CONTENT_TYPES = frozenset(
    {
        "application/python-pickle",
        "application/x-python-pickle",
        "application/pickle",
        "application/x-pickle",
    }
)
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
_DATA_URL_PREFIX = "data:"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


class UnsupportedPayload(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class ImageUndecodable(ValidationFailed):
    """An upload whose header was read and checked but whose pixels cannot be decoded (a
    truncated or corrupt stream); `position` is its place among the images of the request."""

    def __init__(self, detail: str, *, position: int, field: str = "images") -> None:
        super().__init__(detail, field=field)
        self.position = position


@dataclass(frozen=True)
class ScoreLimits:
    max_images: int
    max_image_bytes: int
    max_request_bytes: int
    max_pixels: int
    max_prompt_chars: int


def score_limits() -> ScoreLimits:
    return ScoreLimits(
        max_images=int(getattr(settings, "REWARD_SCORE_MAX_IMAGES", 128)),
        max_image_bytes=int(getattr(settings, "REWARD_SCORE_MAX_IMAGE_BYTES", 4 * 1024 * 1024)),
        max_request_bytes=int(
            getattr(settings, "REWARD_SCORE_MAX_REQUEST_BYTES", 32 * 1024 * 1024)
        ),
        max_pixels=int(getattr(settings, "REWARD_SCORE_MAX_PIXELS", 4096 * 4096)),
        max_prompt_chars=int(getattr(settings, "REWARD_SCORE_MAX_PROMPT_CHARS", 4000)),
    )


_PICKLE_MESSAGE = (
    "pickled payloads are never accepted; send JSON (images as base64 strings) or "
    "multipart/form-data (images as files)"
)


def content_type_check(content_type: str) -> str:
    """'json' or 'multipart'; a pickle or any other type is a 415 saying what to send."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        return "json"
    if media == MULTIPART_TYPE:
        return "multipart"
    if media in PICKLE_CONTENT_TYPES or "pickle" in media:
        raise UnsupportedPayload(_PICKLE_MESSAGE, field="content_type")
    raise UnsupportedPayload(
        f"content type {media or '(none)'!r} is not accepted; send {JSON_TYPE} (images as "
        f"base64) or {MULTIPART_TYPE} (images as files)",
        field="content_type",
    )


def request_size_check(content_length: str | None, limits: ScoreLimits) -> None:
    try:
        length = int(content_length or 0)
    except ValueError:
        raise ValidationFailed("Content-Length is not a number", field="content_length") from None
    if length > limits.max_request_bytes:
        raise PayloadTooLarge(
            f"the request body has {length} bytes; at most {limits.max_request_bytes} are "
            "accepted (send fewer or smaller images per request)",
            field="body",
        )


def pickle_like(head: bytes) -> bool:
    """Whether bytes start like a pickle (protocol 2 to 5 opcode, or a protocol-0 mark)."""
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:2] in (
        b"(d",
        b"(l",
        b"(c",
        b"(i",
    )


def json_body_load(body: bytes) -> Any:
    """The body's JSON; too deep a nesting, a NUL or a lone surrogate anywhere is a 400 naming
    its JSON path (`model`, `items[3].prompt`), as the API's own parser does."""
    if pickle_like(body[:2]):
        raise UnsupportedPayload(_PICKLE_MESSAGE, field="body")
    return json_loads(body, field="")


def images_count_check(count: int, limits: ScoreLimits, *, field: str) -> None:
    if count < 1:
        raise ValidationFailed("at least one image is needed", field=field)
    if count > limits.max_images:
        raise PayloadTooLarge(
            f"{count} images in one request; at most {limits.max_images} are accepted",
            field=field,
        )


def prompt_check(text: Any, limits: ScoreLimits, *, field: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("a non-empty prompt is needed", field=field)
    if len(text) > limits.max_prompt_chars:
        raise PayloadTooLarge(
            f"the prompt has {len(text)} characters; at most {limits.max_prompt_chars}",
            field=field,
        )
    return text_check(text, field=field)  # multipart prompts do not pass the JSON reader


def model_name_check(name: Any, *, field: str = "model") -> str | None:
    """A model name (looked up in the database) or None for the default."""
    if name is None:
        return None
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise ValidationFailed("a model name of 1 to 100 characters", field=field)
    return text_check(name, field=field)


def image_b64_decode(value: Any, limits: ScoreLimits, *, field: str) -> bytes:
    """Base64 (standard alphabet, optionally a data: URL) -> bytes, size-checked first."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed("must be a base64 string of PNG, JPEG or WebP bytes", field=field)
    if value.startswith(_DATA_URL_PREFIX):
        _, sep, value = value.partition(",")
        if not sep:
            raise ValidationFailed("a data: URL without a comma", field=field)
    if len(value) * 3 // 4 > limits.max_image_bytes + 3:
        raise PayloadTooLarge(
            f"the image has about {len(value) * 3 // 4} bytes; at most "
            f"{limits.max_image_bytes} per image",
            field=field,
        )
    try:  # base64.b64decode(value, validate=True) without its copy of the string to bytes
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("is not valid base64", field=field) from None


def image_open(data: bytes, limits: ScoreLimits, *, field: str) -> Image.Image:
    """PNG, JPEG or WebP bytes opened: the format and the pixel count read from the header and
    checked. The pixels are decoded later, once, by the engine's transform (on a CPU in its
    batching thread, see `engine.py`)."""
    if len(data) > limits.max_image_bytes:
        raise PayloadTooLarge(
            f"the image has {len(data)} bytes; at most {limits.max_image_bytes} per image",
            field=field,
        )
    if pickle_like(data[:2]):
        raise UnsupportedPayload(_PICKLE_MESSAGE, field=field)
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        width, height = image.size  # read from the header: nothing decoded yet
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(
                f"the image is {width}x{height}; at most {limits.max_pixels} pixels", field=field
            )
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ValidationFailed(
            f"is not a readable {', '.join(IMAGE_FORMATS)} image", field=field
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(f"the image cannot be decoded: {exc}", field=field) from None
    return image
