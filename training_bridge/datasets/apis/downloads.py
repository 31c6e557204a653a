"""The one way an artifact leaves the API: a presigned URL on S3, the bytes from local files."""

from django.http import FileResponse, HttpResponseBase, HttpResponseRedirect

from training_bridge.datasets.services.artifacts import (
    artifact_open,
    artifact_presigned_url,
    storage_is_s3,
)


def artifact_response(*, key: str, filename: str) -> HttpResponseBase:
    if storage_is_s3():
        return HttpResponseRedirect(artifact_presigned_url(key=key, filename=filename))
    return FileResponse(
        artifact_open(key=key),
        as_attachment=True,
        filename=filename,
        content_type="application/octet-stream",
    )
