"""Images as annotators get them: opaque URLs, WebP thumbnails made once, local and S3."""

import io
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.core.files.storage import default_storage
from PIL import Image

from annotation.models import ImageThumbnail
from annotation.services.images import IMAGE_URL_SECONDS, _signer, thumbnails_ensure
from annotation.services.pairs import pairs_build
from tests.factories import CampaignFactory, GeneratorConfigFactory, PromptFactory
from tests.labeling.factories import (
    annotators,
    candidate_with_image,
    client_for,
    next_url,
    queue_for_annotators,
    queue_with_pairs,
)

pytestmark = pytest.mark.django_db


def one_item(user, queue) -> dict:
    response = client_for(user).post(next_url(queue), {"count": 1}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["items"][0]


def test_the_image_view_serves_a_webp_thumbnail_made_once():
    queue, (pair,) = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    item = one_item(ann, queue)
    client = client_for(ann)

    first = client.get(item["left"]["url"], HTTP_ACCEPT="image/avif,image/webp,*/*")
    second = client.get(item["left"]["url"])

    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "image/webp"
    body = b"".join(first.streaming_content)
    assert body == b"".join(second.streaming_content)
    image = Image.open(io.BytesIO(body))
    assert (image.format, image.size) == ("WEBP", (64, 64))
    thumb = ImageThumbnail.objects.get()
    assert thumb.storage_key == f"thumbs/{thumb.content_sha256[:2]}/{thumb.content_sha256}-768.webp"
    assert default_storage.listdir(f"thumbs/{thumb.content_sha256[:2]}")[1] == [
        f"{thumb.content_sha256}-768.webp"
    ]


def test_a_large_image_is_resized_to_the_screen():
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    config = GeneratorConfigFactory()
    big = candidate_with_image(campaign=campaign, prompt=prompt, config=config, size=1024)

    thumbnails_ensure(candidate_ids=[big.pk])

    thumb = ImageThumbnail.objects.get(content_sha256=big.content_sha256)
    assert (thumb.width, thumb.height) == (768, 768)
    with default_storage.open(thumb.storage_key) as handle:
        assert Image.open(handle).size == (768, 768)


def test_an_image_link_works_only_for_the_annotator_it_was_made_for():
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    owner, other = annotators(2)
    item = one_item(owner, queue)
    url = item["left"]["url"]
    sha = url.rstrip("/").rsplit("/", 1)[1].split(".")[0]
    expired = _signer(owner.pk).sign(f"{sha}.{int(time.time()) - 1}")

    assert client_for(other).get(url).status_code == 404
    assert client_for(owner).get(url.replace(sha, "0" * 64)).status_code == 404
    assert client_for(owner).get(f"/api/labeling/images/{expired}/").json() == {
        "error": "not_found",
        "detail": "this image link has expired; ask for the pair again",
        "field": "token",
    }
    assert ImageThumbnail.objects.count() == 0


def test_urls_carry_no_model_seed_lineage_or_candidate_id():
    campaign = CampaignFactory()
    config = GeneratorConfigFactory(name="flux-dev-secret")
    original = PromptFactory(prompt_set=campaign.prompt_set)
    flipped = PromptFactory(
        prompt_set=campaign.prompt_set, parent=original, perturbation_type="flip",
        num_perturbations=1,
    )  # fmt: skip
    a = candidate_with_image(campaign=campaign, prompt=original, config=config, seed=424242)
    b = candidate_with_image(campaign=campaign, prompt=flipped, config=config, seed=424242)
    queue = queue_for_annotators()
    pairs_build(
        queue_id=queue.pk, campaign_id=campaign.pk, kind="counterfactual", make_thumbnails=False
    )
    (ann,) = annotators(1)

    item = one_item(ann, queue)

    shown = set()
    for side in ("left", "right"):
        url = item[side]["url"]
        token = url.rstrip("/").rsplit("/", 1)[1]
        assert url == f"/api/labeling/images/{token}/"
        value, _signature = token.rsplit(":", 1)
        sha, expiry = value.split(".")  # all a link says: the bytes' hash and its expiry
        shown.add(sha)
        assert abs(int(expiry) - (time.time() + IMAGE_URL_SECONDS)) < 60
        assert "flux" not in url and "424242" not in value
    assert shown == {a.content_sha256, b.content_sha256}


def test_with_s3_next_hands_out_presigned_thumbnail_urls_that_outlive_the_lease(s3_settings):
    queue, (pair,) = queue_with_pairs(n_pairs=1, images=True)
    thumbnails_ensure(candidate_ids=[pair.candidate_a_id, pair.candidate_b_id])
    (ann,) = annotators(1)

    item = one_item(ann, queue)

    url = item["left"]["url"]
    parsed = urlparse(url)
    assert parsed.path.startswith(f"/{s3_settings['S3_BUCKET']}/thumbs/")
    expires = int(parse_qs(parsed.query)["X-Amz-Expires"][0])
    assert expires == IMAGE_URL_SECONDS > queue.lease_seconds
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "WEBP"


def test_with_s3_a_missing_thumbnail_is_made_on_first_view_then_redirected(s3_settings):
    queue, _ = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    item = one_item(ann, queue)
    assert item["left"]["url"].startswith("/api/labeling/images/")

    response = client_for(ann).get(item["left"]["url"])

    assert response.status_code == 302
    location = response["Location"]
    assert f"/{s3_settings['S3_BUCKET']}/thumbs/" in location
    assert requests.get(location, timeout=10).status_code == 200
    assert ImageThumbnail.objects.count() == 1
