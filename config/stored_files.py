"""A stored file as an HTTP answer: the one way a view serves the bytes under a storage key.

By default the web worker streams them (runserver, the demo, the tests). With
STORAGE_ACCEL_REDIRECT set (an nginx `internal` location prefix) the answer has no body, only
`X-Accel-Redirect`, and nginx reads the bytes itself (deploy/proxy/internal-files.conf): from
the media folder for local storage (`/_media/` + the key), or from the object store for S3
(`/_store/` + the path and query of a presigned URL, which nginx proxies to the bucket's
endpoint: the signature and the key stay between the app and nginx). The view has already
checked who asks and picked the key; Content-Type, Cache-Control and Content-Disposition are
the view's (nginx keeps them from this answer), and nginx adds nothing of the stored object
(name, ETag, Last-Modified, the store's own headers): a pair image must not be recognisable
in two pairs by its headers (annotation/services/images.py).
"""

import logging
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header

from config.errors import NotFound

log = logging.getLogger(__name__)

STREAM_CHUNK_BYTES = 64 * 1024
# nginx asks the store as soon as it reads the answer; a presigned path only has to live that long.
ACCEL_PRESIGN_SECONDS = 60


def stored_file_response(
    *, key: str, content_type: str, cache_control: str, download_name: str | None = None
) -> HttpResponseBase:
    """The bytes under `key`, streamed or handed to nginx. `download_name` makes it an
    attachment of that name; without it no file name is sent (keys can be content hashes)."""
    prefix = settings.STORAGE_ACCEL_REDIRECT
    if prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix + _internal_path(key)
    else:
        response = StreamingHttpResponse(content_type=content_type)
        # The size lets HTTP/1.1 keep the connection open; it says no more than the bytes.
        response["Content-Length"], response.streaming_content = _chunks(key)
    response["Cache-Control"] = cache_control
    if download_name is not None:
        response["Content-Disposition"] = content_disposition_header(True, download_name)
    return response


def storage_is_s3(storage: Storage | None = None) -> bool:
    """Whether `storage` (the default one when not given) is S3, which hands out presigned
    URLs, rather than a local folder: the one test of it. (boto3 is imported on first use.)"""
    from storages.backends.s3 import S3Storage

    return isinstance(storage or default_storage, S3Storage)


def _internal_path(key: str) -> str:
    """Where nginx finds `key`, below the internal prefix: the key itself under the media
    folder, or the presigned path and query of an S3 GET (the proxy sends them unchanged)."""
    if not storage_is_s3():
        return quote(key)
    url = urlsplit(default_storage.url(key, expire=ACCEL_PRESIGN_SECONDS))
    return f"{url.path.lstrip('/')}?{url.query}"


def _chunks(key: str) -> tuple[int, Iterator[bytes]]:
    """The size of the file under `key` and its bytes chunk by chunk; the file is closed at the
    end, or when the response is closed early. 404 when it cannot be opened."""
    try:
        handle = default_storage.open(key, "rb")
        size = handle.size
    except (OSError, ValueError) as exc:
        log.error("storage.file.unreadable key=%s error=%s", key, exc)
        raise NotFound("this file cannot be read", field="file") from exc

    def chunks() -> Iterator[bytes]:
        try:
            yield from handle.chunks(STREAM_CHUNK_BYTES)
        finally:
            handle.close()

    return size, chunks()
