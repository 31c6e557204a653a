"""Images as annotators get them: per-lease references, WebP thumbnails made once, local and S3.

An image reference names one side of one pair leased to one annotator; the same image in two
pairs must never be linkable from what the API hands out (the original image of several
counterfactual pairs is their intended winner).
"""

import io
import re
import time
import uuid

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from annotation.models import Assignment, ImageThumbnail, Judgment, Pair, UndoneJudgment
from annotation.services.images import IMAGE_REFERENCE_SECONDS, ImageUrlMaker, thumbnails_ensure
from tests.factories import CampaignFactory, GeneratorConfigFactory, PromptFactory
from tests.labeling.factories import (
    annotators,
    candidate_with_image,
    client_for,
    counterfactual_queue,
    image_shown,
    next_url,
    queue_with_pairs,
    submit_url,
)

pytestmark = pytest.mark.django_db

# What a reference may look like: pair id, side, nonce : timestamp : signature.
REFERENCE = re.compile(r"^/api/labeling/images/(\d+)\.([lr])\.[\w-]{8}:[0-9A-Za-z]+:[\w-]{43}/$")


def one_item(user, queue) -> dict:
    response = client_for(user).post(next_url(queue), {"count": 1}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["items"][0]


def image_bytes(response) -> bytes:
    return b"".join(response.streaming_content)


def assert_no_linkable_header(response, shas: set[str]) -> None:
    """No header names the content hash or would be equal for one image in two pairs."""
    assert response["Cache-Control"] == f"private, max-age={IMAGE_REFERENCE_SECONDS}"
    for name in ("ETag", "Last-Modified", "Content-Disposition", "Location"):
        assert not response.has_header(name), name
    for name, value in response.items():
        for sha in shas:
            assert sha not in value and sha[:16] not in value, (name, value)


def test_the_image_view_serves_a_webp_thumbnail_made_once():
    queue, (pair,) = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    item = one_item(ann, queue)
    client = client_for(ann)

    first = client.get(item["left"]["url"], HTTP_ACCEPT="image/avif,image/webp,*/*")
    second = client.get(item["left"]["url"])

    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "image/webp"
    body = image_bytes(first)
    assert body == image_bytes(second)
    assert int(first["Content-Length"]) == len(body)
    image = Image.open(io.BytesIO(body))
    assert (image.format, image.size) == ("WEBP", (64, 64))
    thumb = ImageThumbnail.objects.get()
    assert thumb.storage_key == f"thumbs/{thumb.content_sha256[:2]}/{thumb.content_sha256}-768.webp"
    assert default_storage.listdir(f"thumbs/{thumb.content_sha256[:2]}")[1] == [
        f"{thumb.content_sha256}-768.webp"
    ]
    assert_no_linkable_header(first, {thumb.content_sha256})


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


def test_an_image_shared_by_several_pairs_gets_a_different_reference_in_each():
    # Given two originals, each the intended winner of three counterfactual pairs
    queue, winners = counterfactual_queue(originals=2, perturbations=3)
    (ann,) = annotators(1)
    client = client_for(ann)
    # When the annotator asks for pairs, asks again (the held ones come back), answers two,
    # asks for more, answers them and asks for the last one
    urls = []

    def take(count: int) -> list[int]:
        items = client.post(next_url(queue), {"count": count}, format="json").json()["items"]
        urls.extend(item[side]["url"] for item in items for side in ("left", "right"))
        return [item["pair"] for item in items]

    def answer(pair_ids: list[int]) -> None:
        for pair_id in pair_ids:
            body = {"pair": pair_id, "client_submission_id": str(uuid.uuid4()), "choice": "tie"}
            assert client.post(submit_url(queue), body, format="json").status_code == 201

    first = take(3)
    assert take(3) == first
    answer(first[:2])
    later = take(3)
    answer(later)
    assert len(take(3)) == 1
    # Then every image reference handed out differs from every other one
    assert len(urls) == 2 * (3 + 3 + 3 + 1)
    assert len(set(urls)) == len(urls)
    # though each original stood behind one reference in each of its three pairs
    pair_of_url = {url: int(REFERENCE.match(url)[1]) for url in urls}
    for winner in winners:
        showing = {pair_of_url[u] for u in urls if image_shown(ann, u).content_sha256 == (
            winner.content_sha256)}  # fmt: skip
        assert showing == set(
            Pair.objects.filter(intended_winner=winner).values_list("pk", flat=True)
        )
        assert len(showing) == 3
    # and nothing in a reference is the image's: no hash, key or candidate id
    shas = set(Pair.objects.values_list("candidate_a__content_sha256", flat=True)) | set(
        Pair.objects.values_list("candidate_b__content_sha256", flat=True)
    )
    for url in urls:
        assert REFERENCE.match(url), url
        for sha in shas:
            assert sha[:16] not in url
    # and the bytes behind the references of one original are served in every pair
    served = {
        image_bytes(client.get(url))
        for url in urls
        if image_shown(ann, url).content_sha256 == winners[0].content_sha256
    }
    assert len(served) == 1


def test_a_reference_serves_only_the_annotator_whose_lease_it_came_from():
    # Given one pair leased to two annotators
    queue, (pair,) = queue_with_pairs(n_pairs=1, images=True)
    owner, other = annotators(2)
    url = one_item(owner, queue)["left"]["url"]
    other_url = one_item(other, queue)["left"]["url"]

    # When the other annotator (who holds a lease on the same pair) asks for the owner's
    # reference, and each asks for their own
    foreign = client_for(other).get(url)

    # Then the owner's reference does not serve them, their own does
    assert foreign.status_code == 404
    assert foreign.json() == {"error": "not_found", "detail": "no such image", "field": "token"}
    assert client_for(owner).get(url).status_code == 200
    assert client_for(other).get(other_url).status_code == 200


def test_a_tampered_expired_or_unleased_reference_is_a_404():
    queue, pairs = queue_with_pairs(n_pairs=2, images=True)
    (owner,) = annotators(1)
    item = one_item(owner, queue)
    url = item["left"]["url"]
    not_leased = next(p.pk for p in pairs if p.pk != item["pair"])
    token = url.rstrip("/").rsplit("/", 1)[1]
    value, timestamp, signature = token.split(":")
    pair_id, side, nonce = value.split(".")
    other_char = {True: "B", False: "A"}

    def link(value: str, timestamp: str = timestamp, signature: str = signature) -> str:
        return f"/api/labeling/images/{value}:{timestamp}:{signature}/"

    made = ImageUrlMaker(user=owner)
    old = ImageUrlMaker(user=owner, issued_at=time.time() - IMAGE_REFERENCE_SECONDS - 5)
    tampered = [
        link(f"{not_leased}.{side}.{nonce}"),
        link(f"{pair_id}.r.{nonce}"),
        link(value, signature=other_char[signature[0] == "A"] + signature[1:]),
        link(value, timestamp=timestamp[:-1] + other_char[timestamp[-1] == "A"]),
        f"/api/labeling/images/{'0' * 64}.{int(time.time()) + 3600}/",
        made.url(pair_id=not_leased, side="left"),  # signed for them, but never leased to them
    ]
    expired = old.url(pair_id=item["pair"], side="left")

    for bad in tampered:
        response = client_for(owner).get(bad)
        assert response.status_code == 404, bad
        assert response.json()["field"] == "token"
    assert client_for(owner).get(expired).json() == {
        "error": "not_found",
        "detail": "this image link has expired; ask for the pair again",
        "field": "token",
    }
    assert ImageThumbnail.objects.count() == 0
    assert client_for(owner).get(url).status_code == 200


def test_a_reference_still_serves_after_the_answer_within_its_lifetime():
    # The page may still be fetching the image of a pair answered at once (a held lease).
    queue, (pair,) = queue_with_pairs(n_pairs=1, images=True)
    (ann,) = annotators(1)
    item = one_item(ann, queue)
    answer = {"pair": pair.pk, "client_submission_id": str(uuid.uuid4()), "choice": "left"}
    assert client_for(ann).post(submit_url(queue), answer, format="json").status_code == 201

    assert client_for(ann).get(item["right"]["url"]).status_code == 200
    assert Assignment.objects.get().status == "submitted"
    assert (Judgment.objects.count(), UndoneJudgment.objects.count()) == (1, 0)


def test_urls_carry_no_model_seed_lineage_or_hash():
    config = GeneratorConfigFactory(name="flux-dev-secret")
    queue, (winner,) = counterfactual_queue(
        originals=1, perturbations=1, config=config, seed=424242
    )
    (ann,) = annotators(1)

    item = one_item(ann, queue)

    pair = Pair.objects.get(pk=item["pair"])
    assert pair.intended_winner_id == winner.pk
    for side in ("left", "right"):
        url = item[side]["url"]
        match = REFERENCE.match(url)
        assert match, url  # all a link says: the pair (known to the page) and the side
        assert (int(match[1]), match[2]) == (pair.pk, side[0])
        for secret in (
            "flux", "424242", pair.candidate_a.content_sha256[:16],
            pair.candidate_b.content_sha256[:16],
        ):  # fmt: skip
            assert secret not in url, (secret, url)


def test_with_s3_images_stream_through_the_view_and_never_name_the_content_hash(s3_settings):
    # Given counterfactual pairs on S3, some thumbnails made ahead and some not
    queue, winners = counterfactual_queue(originals=1, perturbations=3)
    thumbnails_ensure(candidate_ids=[winners[0].pk])
    shas = set(Pair.objects.values_list("candidate_a__content_sha256", flat=True)) | set(
        Pair.objects.values_list("candidate_b__content_sha256", flat=True)
    )
    (ann,) = annotators(1)
    client = client_for(ann)

    # When the annotator takes every pair and fetches its images
    body = client.post(next_url(queue), {"count": 3}, format="json")
    items = body.json()["items"]
    urls = [item[side]["url"] for item in items for side in ("left", "right")]
    responses = [client.get(url) for url in urls]

    # Then the URLs are references to the view, never the storage's (presigned) URLs
    assert len(set(urls)) == 6
    assert all(REFERENCE.match(url) for url in urls), urls
    for sha in shas:
        assert sha[:16] not in body.content.decode()
    # and the view streams the WebP bytes itself, with no header naming the image
    for response in responses:
        assert response.status_code == 200
        assert response["Content-Type"] == "image/webp"
        assert Image.open(io.BytesIO(image_bytes(response))).format == "WEBP"
        assert_no_linkable_header(response, shas)
    # and the thumbnails missing before were made on first view, under content-hash keys
    assert set(ImageThumbnail.objects.values_list("content_sha256", flat=True)) == shas
    assert {t.storage_key for t in ImageThumbnail.objects.all()} == {
        f"thumbs/{sha[:2]}/{sha}-768.webp" for sha in shas
    }
