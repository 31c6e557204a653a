"""Images as annotators see them: per-lease references and screen-sized WebP thumbnails.

An annotator gets an image only through a *reference* to one side of one pair they were
leased: `<pair>.<l|r>.<nonce>:<issued>:<signature>`, signed with a salt bound to the user
(django.core.signing) and honoured for `IMAGE_REFERENCE_SECONDS`. It says nothing about the
image itself: two pairs that show the same image get references that share nothing (other
pair, random nonce, other signature), and even one side of one pair gets a new reference on
every response, so an annotator cannot link an image across pairs from the references (the
audit picked the intended winner of counterfactual pairs from equal URLs: the original image
recurs across its perturbations). References are made in Python from the pair id and side
that `next` already returns (no query per item); the view resolves them through the lease
to the candidate, whose thumbnail it serves from the storage through config/stored_files.py
(local or S3 alike: a presigned URL would name the content-hash key). Thumbnails are made
once per source image (keyed by its content hash) by the pair-building task, or on first view.
"""

import io
import logging
import secrets
import time
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError
from django.urls import reverse
from PIL import Image, UnidentifiedImageError

from annotation.models import Assignment, ImageThumbnail
from config.errors import NotFound
from generation_workers.models import Candidate

log = logging.getLogger(__name__)

THUMBNAIL_MAX_SIDE = 768
THUMBNAIL_QUALITY = 85
# How long an image reference is honoured after it is handed out. The page fetches a pair's
# images as soon as it receives the pair (and keeps the decoded images), so this only has to
# cover that fetch; a lease is 10 minutes by default, and a reload asks `next` again, which
# hands out fresh references for the pairs still held.
IMAGE_REFERENCE_SECONDS = 30 * 60
_SIDES = {"left": "l", "right": "r"}


@dataclass(frozen=True)
class ImageSource:
    content_sha256: str
    storage_key: str


@dataclass(frozen=True)
class ImageReference:
    pair_id: int
    side: str  # "left" or "right", as shown to the annotator


class _ReferenceSigner(signing.TimestampSigner):
    """One user's reference signer; `issued_at` fixes the timestamp (one clock per response,
    and an injectable one for tests)."""

    def __init__(self, *, user_id: int, issued_at: float | None = None) -> None:
        super().__init__(salt=f"annotation.image-reference.{user_id}")
        self._issued = None if issued_at is None else signing.b62_encode(int(issued_at))

    def timestamp(self) -> str:
        return self._issued or super().timestamp()


class ImageUrlMaker:
    """Makes the image URLs of one response: the signer and the view's prefix are built once."""

    def __init__(self, *, user: AbstractBaseUser, issued_at: float | None = None) -> None:
        self._signer = _ReferenceSigner(
            user_id=user.pk, issued_at=time.time() if issued_at is None else issued_at
        )
        self._prefix = reverse("api:annotation:image", kwargs={"token": "T"})[:-2]

    def url(self, *, pair_id: int, side: str) -> str:
        # The nonce makes every reference unique, even one side of one pair asked for twice
        # in the same second; the signature makes it unforgeable.
        value = f"{int(pair_id)}.{_SIDES[side]}.{secrets.token_urlsafe(6)}"
        return f"{self._prefix}{self._signer.sign(value)}/"


def image_reference_resolve(*, user: AbstractBaseUser, token: str) -> ImageReference:
    """The (pair, side) a reference of this user names; 404 for a foreign, forged or old one."""
    signer = _ReferenceSigner(user_id=user.pk)
    try:
        value = signer.unsign(token, max_age=IMAGE_REFERENCE_SECONDS)
    except signing.SignatureExpired:
        raise NotFound(
            "this image link has expired; ask for the pair again", field="token"
        ) from None
    except signing.BadSignature:
        raise NotFound("no such image", field="token") from None
    try:
        pair, side, _nonce = value.split(".")
        return ImageReference(pair_id=int(pair), side={"l": "left", "r": "right"}[side])
    except (ValueError, KeyError):  # signed by us, so only a changed format gets here
        raise NotFound("no such image", field="token") from None


def image_reference_source(*, user: AbstractBaseUser, reference: ImageReference) -> ImageSource:
    """The stored image a reference shows: the side of the pair as this annotator's lease
    presents it. 404 unless they hold or held a lease on the pair (the reference was checked
    to be signed for them: another annotator's never reaches this)."""
    # One query: the lease, with both candidates of its pair (the side picks one).
    fields = ("id", "status", "content_sha256", "storage_key")
    row = (
        Assignment.objects.filter(pair_id=reference.pair_id, annotator=user)
        .values_list(
            "left_candidate_id",
            *(f"pair__candidate_a__{f}" for f in fields),
            *(f"pair__candidate_b__{f}" for f in fields),
        )
        .first()
    )
    if row is None:
        raise NotFound("no such image", field="token")
    left, a, b = row[0], row[1:5], row[5:9]
    if reference.side == "left":
        _, status, sha, key = a if a[0] == left else b
    else:
        _, status, sha, key = b if a[0] == left else a
    if status != Candidate.Status.DONE or not sha:
        raise NotFound("no such image", field="token")
    return ImageSource(content_sha256=sha, storage_key=key)


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
