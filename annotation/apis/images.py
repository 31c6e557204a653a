"""Image views: pair images by per-lease reference, and queues' example images.

A pair's image always comes through here (local storage or S3), because any storage URL would
name the content-hash key (services/images.py): streamed, or handed to nginx after the checks
(config/stored_files.py, STORAGE_ACCEL_REDIRECT). Example images (the same for the whole
queue) come from local storage the same way, or as a redirect to a presigned URL with S3.
Browsers ask for images with Accept: image/*, so content negotiation falls back to JSON only
for the error body.
"""

from django.core.files.storage import default_storage
from django.http import HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from annotation.models import InstructionImage
from annotation.selectors import labeling_queue_for_labeling
from annotation.serializers import ErrorSerializer
from annotation.services.images import (
    IMAGE_REFERENCE_SECONDS,
    image_reference_resolve,
    image_reference_source,
    thumbnail_ensure,
)
from config.errors import NotFound
from config.stored_files import storage_is_s3, stored_file_response

_IMAGE_RESPONSES = {
    (200, "image/webp"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown, foreign or expired link."),
}


def _serve(key: str, content_type: str) -> HttpResponseBase:
    if storage_is_s3():
        return HttpResponseRedirect(default_storage.url(key, expire=IMAGE_REFERENCE_SECONDS))
    return stored_file_response(
        key=key, content_type=content_type, cache_control="private, max-age=3600"
    )


class _ImageView(APIView):
    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


class ImageApi(_ImageView):
    @extend_schema(operation_id="labeling_image", responses=_IMAGE_RESPONSES)
    def get(self, request: Request, token: str) -> HttpResponseBase:
        reference = image_reference_resolve(user=request.user, token=token)
        source = image_reference_source(user=request.user, reference=reference)
        thumb = thumbnail_ensure(
            content_sha256=source.content_sha256, storage_key=source.storage_key
        )
        # Nothing in the headers may be the same for one image in two pairs: no file name
        # (it is the content hash), no ETag or Last-Modified; private, so no shared cache
        # keeps it past the reference's life.
        return stored_file_response(
            key=thumb.storage_key,
            content_type="image/webp",
            cache_control=f"private, max-age={IMAGE_REFERENCE_SECONDS}",
        )


def example_image_url(image: InstructionImage) -> str:
    return reverse(
        "api:annotation:example-image", kwargs={"queue_id": image.queue_id, "name": image.name}
    )


class ExampleImageApi(_ImageView):
    @extend_schema(
        operation_id="labeling_example_image",
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            302: OpenApiResponse(description="Redirect to a presigned URL (S3 storage)."),
            404: OpenApiResponse(ErrorSerializer, description="No such example image."),
        },
    )
    def get(self, request: Request, queue_id: int, name: str) -> HttpResponseBase:
        queue = labeling_queue_for_labeling(queue_id=queue_id, user=request.user)
        image = InstructionImage.objects.filter(queue=queue, name=name).first()
        if image is None:
            raise NotFound(f"this queue has no example image {name!r}", field="name")
        kind = image.image.name.rsplit(".", 1)[-1].lower()
        return _serve(image.image.name, f"image/{'jpeg' if kind == 'jpg' else kind}")
