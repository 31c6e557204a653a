"""Images as annotators see them: opaque URLs and screen-sized WebP thumbnails.

A URL names an image only by a signed token bound to the annotator (local storage: served by
an authenticated view) or is a presigned S3 URL of the thumbnail valid for hours, far longer
than a lease. Neither carries a model, seed, prompt lineage or intended winner: the only thing
inside is the content hash of the image bytes. Thumbnails are made once per source image
(keyed by its content hash) by the pair-building task, or on first view.
"""

import io
import logging
import time
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError
from django.urls import reverse
from PIL import Image, UnidentifiedImageError

from annotation.models import ImageThumbnail
from config.errors import NotFound
from generation_workers.models import Candidate

log = logging.getLogger(__name__)

THUMBNAIL_MAX_SIDE = 768
THUMBNAIL_QUALITY = 85
# An image URL stays valid this long after it is handed out (a lease is 10 minutes by default).
IMAGE_URL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ImageSource:
    content_sha256: str
    storage_key: str
    thumbnail_key: str | None


def _signer(user_id: int) -> signing.Signer:
    return signing.Signer(salt=f"annotation.image.{user_id}")


def storage_presigns() -> bool:
    """Whether the default storage hands out presigned URLs (S3) rather than local files."""
    return not isinstance(default_storage, FileSystemStorage)


class ImageUrlMaker:
    """Makes the URLs of one response: the signer and the view's prefix are built once."""

    def __init__(self, *, user: AbstractBaseUser) -> None:
        self._signer = _signer(user.pk)
        self._expires = int(time.time()) + IMAGE_URL_SECONDS
        self._prefix = reverse("api:annotation:image", kwargs={"token": "T"})[:-2]
        self._presign = storage_presigns()

    def url(self, image: ImageSource) -> str:
        if self._presign and image.thumbnail_key:
            return default_storage.url(image.thumbnail_key, expire=IMAGE_URL_SECONDS)
        token = self._signer.sign(f"{image.content_sha256}.{self._expires}")
        return f"{self._prefix}{token}/"


def image_token_resolve(*, user: AbstractBaseUser, token: str) -> str:
    """The content hash a token of this user names; 404 for a foreign, forged or old token."""
    try:
        value = _signer(user.pk).unsign(token)
        sha, expires = value.rsplit(".", 1)
        expired = int(expires) < time.time()
    except (signing.BadSignature, ValueError):
        raise NotFound("no such image", field="token") from None
    if expired:
        raise NotFound("this image link has expired; ask for the pair again", field="token")
    return sha


def thumbnail_ensure(*, content_sha256: str, storage_key: str) -> ImageThumbnail:
    """The WebP thumbnail of an image, made and stored once (idempotent, safe in parallel)."""
    existing = ImageThumbnail.objects.filter(content_sha256=content_sha256).first()
    if existing is not None:
        return existing
    try:
        with default_storage.open(storage_key, "rb") as handle:
            image = Image.open(handle)
            image.load()
    except (OSError, UnidentifiedImageError) as exc:
        log.error("labeling.thumbnail.unreadable key=%s error=%s", storage_key, exc)
        raise NotFound("this image cannot be read", field="image") from exc
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=THUMBNAIL_QUALITY, method=4)
    key = f"thumbs/{content_sha256[:2]}/{content_sha256}-{THUMBNAIL_MAX_SIDE}.webp"
    if not default_storage.exists(key):
        saved = default_storage.save(key, ContentFile(buffer.getvalue()))
        if saved != key:  # a parallel maker stored the same bytes first
            default_storage.delete(saved)
    try:
        thumb, created = ImageThumbnail.objects.get_or_create(
            content_sha256=content_sha256,
            defaults={"storage_key": key, "width": image.width, "height": image.height},
        )
    except IntegrityError:
        thumb, created = ImageThumbnail.objects.get(content_sha256=content_sha256), False
    if created:
        log.info("labeling.thumbnail.made key=%s size=%dx%d", key, image.width, image.height)
    return thumb


def thumbnails_ensure(*, candidate_ids: list[int]) -> int:
    """Make the thumbnails of these candidates' images (done ones). Returns how many exist."""
    made = 0
    rows = (
        Candidate.objects.filter(pk__in=candidate_ids, status=Candidate.Status.DONE)
        .exclude(content_sha256="")
        .values_list("content_sha256", "storage_key")
        .distinct()
    )
    for sha, key in rows:
        try:
            thumbnail_ensure(content_sha256=sha, storage_key=key)
            made += 1
        except NotFound:
            continue  # logged; the view retries on first display
    return made


def image_source_for(*, content_sha256: str) -> ImageSource:
    """The stored image behind a content hash (any finished candidate with those bytes)."""
    key = (
        Candidate.objects.filter(content_sha256=content_sha256, status=Candidate.Status.DONE)
        .values_list("storage_key", flat=True)
        .first()
    )
    if key is None:
        raise NotFound("no such image", field="token")
    thumb = ImageThumbnail.objects.filter(content_sha256=content_sha256).first()
    return ImageSource(content_sha256, key, thumb.storage_key if thumb else None)
