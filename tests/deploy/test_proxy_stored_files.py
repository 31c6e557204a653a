"""Stored files handed to nginx (STORAGE_ACCEL_REDIRECT, config/stored_files.py): the header
the app sets (no nginx needed), then the shipped proxy configuration run for real in front of
the live server, with local files and with moto's S3.

Through the proxy an annotator must get exactly the image bytes with the app's Content-Type
and Cache-Control, and nothing that names the stored key or would be the same for one image
shown in two pairs (ETag, Last-Modified, the store's own headers); the internal locations
answer 404 to a browser, and a reference works only for the annotator it was handed to.
"""

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotation.models import ImageThumbnail
from annotation.services.images import IMAGE_REFERENCE_SECONDS
from tests.deploy.proxy_conf import ROOT, free_port, nginx_running, proxy_conf_write
from tests.labeling.factories import (
    annotators,
    candidate_with_image,
    client_for,
    counterfactual_queue,
    image_shown,
    next_url,
    queue_with_pairs,
)
from training_bridge.datasets.apis.downloads import artifact_response
from training_bridge.datasets.services.artifacts import artifact_put_bytes

IMAGE_CACHE = f"private, max-age={IMAGE_REFERENCE_SECONDS}"
# Everything the proxy's answer with a pair image may carry (lower case): nginx's own, the
# bytes' length, that ranges may be asked for, and the app's type, caching and nosniff.
IMAGE_HEADERS = {
    "server",
    "date",
    "content-type",
    "content-length",
    "accept-ranges",
    "connection",
    "cache-control",
    "x-content-type-options",
}


def items(user, queue, count: int) -> list[dict]:
    response = client_for(user).post(next_url(queue), {"count": count}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["items"]


def thumbnail_of(user, url: str) -> ImageThumbnail:
    return ImageThumbnail.objects.get(content_sha256=image_shown(user, url).content_sha256)


# The header the app sets (no nginx) -------------------------------------------------------


@pytest.mark.django_db
def test_without_the_setting_the_image_view_streams_the_bytes_itself(settings):
    settings.STORAGE_ACCEL_REDIRECT = ""
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    url = items(ann, queue, 1)[0]["left"]["url"]

    response = client_for(ann).get(url)

    assert response.status_code == 200
    assert not response.has_header("X-Accel-Redirect")
    with default_storage.open(thumbnail_of(ann, url).storage_key, "rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()


@pytest.mark.django_db
def test_on_local_storage_the_image_view_names_the_thumbnail_under_the_media_location(settings):
    # Given the internal media location and a leased pair
    settings.STORAGE_ACCEL_REDIRECT = "/_media/"
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    url = items(ann, queue, 1)[0]["left"]["url"]

    # When the annotator asks for the image
    response = client_for(ann).get(url)

    # Then the app sends no bytes, only where nginx finds them, with its own type and caching
    thumb = thumbnail_of(ann, url)
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/_media/{thumb.storage_key}"
    assert response.content == b""
    assert response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == IMAGE_CACHE
    for name in ("ETag", "Last-Modified", "Content-Disposition", "Location"):
        assert not response.has_header(name), name
    # and nginx's alias of the media folder finds the thumbnail there
    path = Path(settings.MEDIA_ROOT) / thumb.storage_key
    assert Image.open(path).format == "WEBP"


@pytest.mark.django_db
def test_on_s3_the_image_view_hands_nginx_a_presigned_path_that_reads_the_thumbnail(
    settings, s3_settings, moto_endpoint
):
    settings.STORAGE_ACCEL_REDIRECT = "/_store/"
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    url = items(ann, queue, 1)[0]["right"]["url"]

    response = client_for(ann).get(url)

    thumb = thumbnail_of(ann, url)
    assert response.status_code == 200
    assert response.content == b""
    assert (response["Content-Type"], response["Cache-Control"]) == ("image/webp", IMAGE_CACHE)
    target = response["X-Accel-Redirect"]
    match = re.fullmatch(rf"/_store/{s3_settings['S3_BUCKET']}/{thumb.storage_key}\?(.+)", target)
    assert match, target
    query = parse_qs(match[1])
    assert query["X-Amz-Expires"] == ["60"] and len(query["X-Amz-Signature"][0]) == 64
    # What nginx's /_store/ asks the endpoint for is the thumbnail
    stored = requests.get(moto_endpoint + target.removeprefix("/_store"), timeout=10)
    with default_storage.open(thumb.storage_key, "rb") as handle:
        assert stored.content == handle.read()


@pytest.mark.django_db
def test_a_foreign_reference_is_a_404_without_a_redirect(settings):
    settings.STORAGE_ACCEL_REDIRECT = "/_media/"
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    owner, other = annotators(2)
    url = items(owner, queue, 1)[0]["left"]["url"]

    response = client_for(other).get(url)

    assert response.status_code == 404
    assert not response.has_header("X-Accel-Redirect")


@pytest.mark.django_db
def test_a_leads_candidate_image_and_an_artifact_go_the_same_way_on_local_storage(
    settings, lead_client
):
    settings.STORAGE_ACCEL_REDIRECT = "/_media/"
    candidate = candidate_with_image()
    artifact_put_bytes(key="datasets/d/v1/jsonl/pairs.jsonl", data=b'{"pair": 1}\n')

    image = lead_client.get(
        reverse("api:generation:candidate-image", kwargs={"candidate_id": candidate.pk})
    )
    download = artifact_response(key="datasets/d/v1/jsonl/pairs.jsonl", filename="d-v1.jsonl")

    assert image.status_code == 200 and image.content == b""
    assert image["X-Accel-Redirect"] == f"/_media/{candidate.storage_key}"
    assert (image["Content-Type"], image["Cache-Control"]) == (
        "image/png",
        "private, max-age=86400, immutable",
    )
    assert download["X-Accel-Redirect"] == "/_media/datasets/d/v1/jsonl/pairs.jsonl"
    assert download["Content-Disposition"] == 'attachment; filename="d-v1.jsonl"'
    assert download["Content-Type"] == "application/octet-stream"


def test_a_prefix_without_its_slashes_stops_the_start_naming_the_setting():
    # Settings are read once at start-up: a fresh interpreter, as a server starts
    done = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**os.environ, "STORAGE_ACCEL_REDIRECT": "_store"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: STORAGE_ACCEL_REDIRECT must be empty or a "
        "path that starts and ends with '/', got '_store'"
    )


# The shipped proxy, for real ----------------------------------------------------------------

nginx_required = pytest.mark.skipif(
    not shutil.which("nginx"),
    reason="nginx is not installed (apt-get install nginx); the proxy tests run it for real",
)


@pytest.fixture
def proxy(live_server, moto_endpoint, tmp_path, settings):
    """deploy/proxy's configuration in front of the live server: (base URL, CA file)."""
    folder = tmp_path / "proxy"
    folder.mkdir()
    https_port = free_port()
    conf = proxy_conf_write(
        folder,
        web=live_server.url.removeprefix("http://"),
        store=moto_endpoint.removeprefix("http://"),
        media=Path(settings.MEDIA_ROOT),
        static=folder / "static",
        https_port=https_port,
        http_port=free_port(),
    )
    with nginx_running(folder, conf, port=https_port):
        yield f"https://localhost:{https_port}", str(folder / "certs" / "fullchain.pem")


def session_of(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {name: client.cookies[name].value}


@nginx_required
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_through_the_proxy_an_annotator_gets_the_bytes_and_nothing_that_names_or_links_them(
    backend, request, transactional_db, settings, proxy
):
    # Given the proxy in front of the app, the app handing images to it, and one original
    # image shown in two pairs leased to one annotator
    base, ca = proxy
    bucket = ""
    if backend == "s3":
        bucket = request.getfixturevalue("s3_settings")["S3_BUCKET"]
    settings.STORAGE_ACCEL_REDIRECT = {"local": "/_media/", "s3": "/_store/"}[backend]
    queue, (winner,) = counterfactual_queue(originals=1, perturbations=2)
    owner, other = annotators(2)
    urls = [
        item[side]["url"]
        for item in items(owner, queue, 2)
        for side in ("left", "right")
        if image_shown(owner, item[side]["url"]).content_sha256 == winner.content_sha256
    ]
    assert len(urls) == 2

    # When the annotator's browser fetches it in both pairs
    cookies = session_of(owner)
    answers = [requests.get(base + url, cookies=cookies, verify=ca, timeout=10) for url in urls]

    # Then each answer is exactly the thumbnail's bytes, with the app's type and caching
    thumb = ImageThumbnail.objects.get(content_sha256=winner.content_sha256)
    with default_storage.open(thumb.storage_key, "rb") as handle:
        data = handle.read()
    assert Image.open(io.BytesIO(data)).format == "WEBP"
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.content == data
        assert answer.headers["Content-Type"] == "image/webp"
        assert answer.headers["Cache-Control"] == IMAGE_CACHE
        # and no header but nginx's own, the length and the app's: no ETag, no Last-Modified,
        # nothing of the store's, nothing naming the key, the content hash or the bucket
        assert {name.lower() for name in answer.headers} == IMAGE_HEADERS, answer.headers
        for name, value in answer.headers.items():
            for secret in (thumb.content_sha256[:16], thumb.storage_key, bucket or "\0"):
                assert secret not in value, (name, value)
    # The two answers differ in nothing a browser could tell one image by
    first, second = ({k: v for k, v in a.headers.items() if k != "Date"} for a in answers)
    assert first == second

    # A browser asking for the internal locations itself gets nginx's 404 that names nothing
    direct = [f"/_media/{thumb.storage_key}", f"/_store/{bucket}/{thumb.storage_key}"]
    if backend == "s3":
        direct.append(client_for(owner).get(urls[0])["X-Accel-Redirect"])
    for path in direct:
        answer = requests.get(base + path, cookies=cookies, verify=ca, timeout=10)
        assert answer.status_code == 404, path
        assert thumb.content_sha256 not in answer.text and answer.content != data

    # and another annotator with the owner's reference gets the app's 404
    foreign = requests.get(base + urls[0], cookies=session_of(other), verify=ca, timeout=10)
    assert foreign.status_code == 404
    assert foreign.json()["error"] == "not_found"

    # A file lost from the store is nginx's own 404: the store's error body names the key
    default_storage.delete(thumb.storage_key)
    lost = requests.get(base + urls[1], cookies=cookies, verify=ca, timeout=10)
    assert lost.status_code == 404
    assert thumb.content_sha256 not in lost.text and "NoSuchKey" not in lost.text
    assert not any(name.lower().startswith("x-amz") for name in lost.headers)
