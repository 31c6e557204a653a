"""The one way an artifact leaves the API: a presigned URL on S3, the bytes from local files
(streamed, or sent by nginx: config/stored_files.py)."""

from django.http import HttpResponseBase, HttpResponseRedirect

from config.stored_files import storage_is_s3, stored_file_response
from training_bridge.datasets.services.artifacts import artifact_presigned_url


def artifact_response(*, key: str, filename: str) -> HttpResponseBase:
    if storage_is_s3():
        return HttpResponseRedirect(artifact_presigned_url(key=key, filename=filename))
    return stored_file_response(
        key=key,
        content_type="application/octet-stream",
        cache_control="private, no-cache",
        download_name=filename,
    )
