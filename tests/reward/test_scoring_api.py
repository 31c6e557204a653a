"""POST /api/reward/score: the same scores as the checkpoint offline, the promoted model served
and switched without a restart, the group form, token auth, and every bad payload a clear 4xx.
"""

from __future__ import annotations

import base64
import io
import pickle
import threading

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from annotation.services.annotators import user_create
from config.roles import Role
from tests.factories import CampaignFactory, CandidateFactory
from training_bridge.models import RewardModel
from training_bridge.training.trainer.checkpoint import reward_model_load

URL = "/api/reward/score"
PROMPT = "a photo of a cat to the left of a dog"
OTHER = "a photo of a cup above a lamp"


def png(seed: int, size: int = 32, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def offline(folder, captions: list[str], images: list[bytes]) -> list[tuple[float, float]]:
    return [(s.mean, s.std) for s in reward_model_load(folder).score(captions, images)]


def means_stds(body: dict) -> list[tuple[float, float]]:
    return [(s["mean"], s["std"]) for s in body["scores"]]


# -- same scores as offline -----------------------------------------------------------------


def test_uploaded_images_get_the_scores_the_checkpoint_gives_offline(
    register, builtin_folders, ml_client
):
    # given a promoted built-in model and 5 images with two prompts
    model = register(builtin_folders(0), promote=True)
    images = [png(i) for i in range(5)]
    captions = [PROMPT, PROMPT, OTHER, PROMPT, OTHER]
    # when an RL trainer posts them as base64 JSON
    response = ml_client.post(
        URL,
        {"items": [{"prompt": c, "image": b64(i)} for c, i in zip(captions, images, strict=True)]},
        format="json",
    )
    # then mean, std and model version per image equal the checkpoint's own scores
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model"] == {"id": model.pk, "name": "spatial-rm", "version": 1,
                             "backbone": "builtin", "head": "gaussian"}  # fmt: skip
    assert [s["model_version"] for s in body["scores"]] == [1] * 5
    np.testing.assert_allclose(
        means_stds(body), offline(builtin_folders(0), captions, images), rtol=1e-5, atol=1e-6
    )


def test_multipart_uploads_get_the_same_scores_as_base64_json(register, builtin_folders, ml_client):
    register(builtin_folders(0), promote=True)
    images = [png(10 + i, fmt="WEBP" if i % 2 else "PNG") for i in range(4)]
    # when the same images go once as files (one prompt for all) and once as JSON
    files = [io.BytesIO(data) for data in images]
    for i, handle in enumerate(files):
        handle.name = f"img{i}.bin"
    multipart = ml_client.post(URL, {"prompt": PROMPT, "image": files}, format="multipart")
    as_json = ml_client.post(
        URL, {"items": [{"prompt": PROMPT, "image": b64(i)} for i in images]}, format="json"
    )
    # then both answers hold the offline scores
    assert multipart.status_code == 200, multipart.json()
    assert as_json.status_code == 200
    expected = offline(builtin_folders(0), [PROMPT] * 4, images)
    np.testing.assert_allclose(means_stds(multipart.json()), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(means_stds(as_json.json()), expected, rtol=1e-5, atol=1e-6)


def test_candidates_are_scored_by_id_against_their_own_prompt_or_a_given_one(
    register, builtin_folders, ml_client
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    register(builtin_folders(0), promote=True)
    campaign = CampaignFactory()
    candidates = []
    for i in range(2):
        candidate = CandidateFactory(campaign=campaign, prompt__text=f"{PROMPT} {i}")
        default_storage.save(candidate.storage_key, ContentFile(png(40 + i)))
        candidates.append(candidate)
    response = ml_client.post(
        URL,
        {"items": [{"candidate": candidates[0].pk},
                   {"candidate": candidates[1].pk, "prompt": OTHER}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    expected = offline(builtin_folders(0), [f"{PROMPT} 0", OTHER], [png(40), png(41)])
    np.testing.assert_allclose(means_stds(response.json()), expected, rtol=1e-5, atol=1e-6)


def test_the_clip_style_model_is_served_with_its_offline_scores(register, clip_folder, ml_client):
    register(clip_folder, name="clip-rm", promote=True)
    images = [png(i, size=48) for i in range(3)]
    response = ml_client.post(
        URL,
        {"model": "clip-rm", "items": [{"prompt": PROMPT, "image": b64(i)} for i in images]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["model"]["backbone"] == "clip"
    np.testing.assert_allclose(
        means_stds(response.json()), offline(clip_folder, [PROMPT] * 3, images),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_groups_are_ranked_best_first_with_top_and_bottom_k(register, builtin_folders, ml_client):
    register(builtin_folders(1), promote=True)
    groups = [[png(100 + i) for i in range(6)], [png(200 + i) for i in range(4)]]
    response = ml_client.post(
        URL,
        {"top_k": 2, "groups": [
            {"prompt": PROMPT, "items": [{"image": b64(i)} for i in groups[0]]},
            {"prompt": OTHER, "items": [{"image": b64(i)} for i in groups[1]]},
        ]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    for group, prompt, answer in zip(groups, [PROMPT, OTHER], response.json()["groups"],
                                     strict=True):  # fmt: skip
        means = [m for m, _ in offline(builtin_folders(1), [prompt] * len(group), group)]
        ranking = sorted(range(len(means)), key=lambda i: -means[i])
        assert answer["ranking"] == ranking
        assert answer["top"] == ranking[:2]
        assert answer["bottom"] == ranking[-2:]
        assert [s["rank"] for s in answer["scores"]] == [ranking.index(i) + 1 for i in
                                                          range(len(group))]  # fmt: skip
        np.testing.assert_allclose([s["mean"] for s in answer["scores"]], means, rtol=1e-5,
                                   atol=1e-6)  # fmt: skip


def test_multipart_group_labels_form_groups(register, builtin_folders, ml_client):
    register(builtin_folders(1), promote=True)
    images = [png(300 + i) for i in range(4)]
    files = []
    for i, data in enumerate(images):
        handle = io.BytesIO(data)
        handle.name = f"{i}.png"
        files.append(handle)
    response = ml_client.post(
        URL,
        {"prompt": PROMPT, "image": files, "group": ["x", "y", "x", "y"], "top_k": "1"},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    means = [m for m, _ in offline(builtin_folders(1), [PROMPT] * 4, images)]
    first, second = response.json()["groups"]
    assert first["top"] == [0 if means[0] >= means[2] else 1]
    assert second["top"] == [0 if means[1] >= means[3] else 1]


# -- which model is served ------------------------------------------------------------------


def test_a_promotion_is_served_once_the_lookup_is_older_than_the_refresh_interval(
    register, builtin_folders, ml_client, settings
):
    # given version 1 promoted and version 2 registered, and a serving process that looked the
    # promoted model up for this request and then reuses the lookup for a minute
    first = register(builtin_folders(0), promote=True)
    second = register(builtin_folders(1))
    body = {"items": [{"prompt": PROMPT, "image": b64(png(7))}]}
    before = ml_client.post(URL, body, format="json").json()
    settings.REWARD_SCORING_REFRESH_SECONDS = 60
    # when version 2 is promoted through the API (the serving process keeps running)
    promoted = ml_client.post(f"/api/reward/models/{second.pk}/promote/")
    within = ml_client.post(URL, body, format="json").json()
    # and the lookup is then older than the interval (an interval of 0: any lookup is)
    settings.REWARD_SCORING_REFRESH_SECONDS = 0
    after = ml_client.post(URL, body, format="json").json()
    # then within the interval version 1 still answers, and after it version 2 does, with its
    # offline score
    assert promoted.status_code == 200
    assert before["model"]["version"] == 1 and before["scores"][0]["model_version"] == 1
    assert within["model"]["version"] == 1
    assert after["model"]["version"] == 2 and after["scores"][0]["model_version"] == 2
    np.testing.assert_allclose(
        means_stds(after), offline(builtin_folders(1), [PROMPT], [png(7)]), rtol=1e-5, atol=1e-6
    )
    assert means_stds(before) != means_stds(after)
    first.refresh_from_db()
    assert first.status == RewardModel.Status.ARCHIVED


def test_a_pinned_version_is_served_even_when_another_is_promoted(
    register, builtin_folders, ml_client
):
    register(builtin_folders(0))
    register(builtin_folders(1), promote=True)
    response = ml_client.post(
        URL, {"version": 1, "items": [{"prompt": PROMPT, "image": b64(png(8))}]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["scores"][0]["model_version"] == 1
    np.testing.assert_allclose(
        means_stds(response.json()), offline(builtin_folders(0), [PROMPT], [png(8)]), rtol=1e-5
    )


def test_without_a_promoted_model_scoring_is_a_409(register, builtin_folders, ml_client):
    register(builtin_folders(0))
    response = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1))}]},
                              format="json")  # fmt: skip
    assert response.status_code == 409
    assert response.json()["field"] == "model"
    unknown = ml_client.post(URL, {"model": "nope", "items": [{"prompt": PROMPT,
                                                                "image": b64(png(1))}]},
                             format="json")  # fmt: skip
    assert unknown.status_code == 404


def test_concurrent_requests_each_get_their_own_scores(register, builtin_folders, ml_client):
    from training_bridge.reward_models.selectors.reward_models import model_ref_of
    from training_bridge.reward_models.services.scoring import scoring_engine

    # given the engine of this process and 6 threads scoring different images at once
    model = register(builtin_folders(0), promote=True)
    engine = scoring_engine()
    loaded = engine.model(model_ref_of(model))
    batches = {t: [png(500 + 10 * t + i) for i in range(1 + t)] for t in range(6)}
    results: dict[int, list] = {}

    def work(t: int) -> None:
        results[t] = engine.score(loaded, [PROMPT] * len(batches[t]), batches[t])

    threads = [threading.Thread(target=work, args=(t,)) for t in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then every thread got exactly the offline scores of its own images
    for t, images in batches.items():
        np.testing.assert_allclose(
            [(s.mean, s.std) for s in results[t]],
            offline(builtin_folders(0), [PROMPT] * len(images), images), rtol=1e-5, atol=1e-6,
        )  # fmt: skip


def test_a_model_is_loaded_once_per_process_however_many_requests_ask_at_once(
    register, builtin_folders
):
    from training_bridge.reward_models.selectors.reward_models import model_ref_of
    from training_bridge.reward_models.services.scoring import scoring_engine

    model = register(builtin_folders(3), promote=True)
    engine = scoring_engine()
    loads = engine.loads
    got = []
    barrier = threading.Barrier(5)

    def ask() -> None:
        barrier.wait()
        got.append(engine.model(model_ref_of(model)))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.loads - loads == 1
    assert len({id(loaded) for loaded in got}) == 1
    assert engine.model(model_ref_of(model)) is got[0]


# -- who may score --------------------------------------------------------------------------


def test_an_rl_client_scores_with_a_token_and_annotators_are_refused(
    register, builtin_folders, annotator
):
    register(builtin_folders(0), promote=True)
    user_create(username="rl-trainer", password="rl-pass-1234", role=Role.ML)
    client = APIClient()
    answer = client.post("/api/auth/token/", {"username": "rl-trainer", "password": "rl-pass-1234"})
    token = answer.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {"items": [{"prompt": PROMPT, "image": b64(png(3))}]}
    assert client.post(URL, body, format="json").status_code == 200
    anonymous = APIClient().post(URL, body, format="json")
    assert anonymous.status_code == 401  # the token is asked for first
    assert anonymous["WWW-Authenticate"] == "Token"
    annotator_client = APIClient()
    annotator_client.force_authenticate(user=annotator)
    refused = annotator_client.post(URL, body, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"


def test_a_removed_role_or_revoked_token_stops_once_its_remembered_check_is_too_old(
    register, builtin_folders, settings
):
    from django.contrib.auth.models import Group

    from accounts.services import api_token_create, api_tokens_revoke_all

    # given an ML engineer's token whose check and role are remembered for a minute
    settings.AUTH_REMEMBER_SECONDS = 60
    register(builtin_folders(0), promote=True)
    user = user_create(username="rl-2", password="rl-pass-1234", role=Role.ML)
    key = api_token_create(user=user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = {"items": [{"prompt": PROMPT, "image": b64(png(3))}]}
    assert client.post(URL, body, format="json").status_code == 200
    # when the account loses the ml role, the remembered check still admits it within the
    # interval, and refuses it once the check is older than the interval (0: any check is)
    user.groups.remove(Group.objects.get(name="ml"))
    assert client.post(URL, body, format="json").status_code == 200
    settings.AUTH_REMEMBER_SECONDS = 0
    refused = client.post(URL, body, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    # and a revoked token likewise
    user.groups.add(Group.objects.get(name="ml"))
    settings.AUTH_REMEMBER_SECONDS = 60
    assert client.post(URL, body, format="json").status_code == 200
    api_tokens_revoke_all(user=user)
    assert client.post(URL, body, format="json").status_code == 200
    settings.AUTH_REMEMBER_SECONDS = 0
    revoked = client.post(URL, body, format="json")
    assert revoked.status_code == 401
    assert revoked.json() == {"error": "authentication_failed", "detail": "Token revoked."}


# -- bad payloads ---------------------------------------------------------------------------


@pytest.fixture
def served(register, builtin_folders):
    return register(builtin_folders(0), promote=True)


def test_a_pickle_content_type_is_a_415_that_says_pickles_are_never_read(served, ml_client):
    payload = pickle.dumps({"images": [png(1)], "prompts": [PROMPT]})
    response = ml_client.post(URL, payload, content_type="application/python-pickle")
    assert response.status_code == 415
    assert "pickled payloads are never accepted" in response.json()["detail"]


def test_a_pickle_sent_as_json_or_as_an_image_file_is_a_415(served, ml_client):
    payload = pickle.dumps([PROMPT, png(1)], protocol=4)
    as_json = ml_client.post(URL, payload, content_type="application/json")
    handle = io.BytesIO(payload)
    handle.name = "batch.pkl"
    as_file = ml_client.post(URL, {"prompt": PROMPT, "image": [handle]}, format="multipart")
    inside = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": b64(payload)}]},
                            format="json")  # fmt: skip
    assert (as_json.status_code, as_json.json()["field"]) == (415, "body")
    assert (as_file.status_code, as_file.json()["field"]) == (415, "image[0]")
    assert (inside.status_code, inside.json()["field"]) == (415, "items[0].image")


def test_other_content_types_are_a_415(served, ml_client):
    response = ml_client.post(URL, b"prompt=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["field"] == "content_type"


def test_too_many_images_is_a_413_naming_the_field(served, ml_client, settings):
    settings.REWARD_SCORE_MAX_IMAGES = 4
    image = b64(png(1))
    items = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": image}] * 5},
                           format="json")  # fmt: skip
    groups = ml_client.post(
        URL, {"groups": [{"prompt": PROMPT, "items": [{"image": image}] * 3}] * 2}, format="json"
    )
    assert (items.status_code, items.json()["field"]) == (413, "items")
    assert (groups.status_code, groups.json()["field"]) == (413, "groups")


def test_an_oversized_image_or_body_is_a_413(served, ml_client, settings):
    settings.REWARD_SCORE_MAX_IMAGE_BYTES = 2000
    big = png(1, size=64)  # about 12 KB of noise
    as_json = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": b64(big)}]},
                             format="json")  # fmt: skip
    handle = io.BytesIO(big)
    handle.name = "big.png"
    as_file = ml_client.post(URL, {"prompt": PROMPT, "image": [handle]}, format="multipart")
    assert (as_json.status_code, as_json.json()["field"]) == (413, "items[0].image")
    assert (as_file.status_code, as_file.json()["field"]) == (413, "image[0]")
    settings.REWARD_SCORE_MAX_REQUEST_BYTES = 1000
    body = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": b64(png(1, size=8))}] * 9},
                          format="json")  # fmt: skip
    assert (body.status_code, body.json()["field"]) == (413, "body")


def test_an_image_with_too_many_pixels_is_a_413_before_it_is_decoded(served, ml_client, settings):
    settings.REWARD_SCORE_MAX_PIXELS = 32 * 32
    response = ml_client.post(
        URL, {"items": [{"prompt": PROMPT, "image": b64(png(1, size=33))}]}, format="json"
    )
    assert (response.status_code, response.json()["field"]) == (413, "items[0].image")


def _files(*datas: bytes) -> list[io.BytesIO]:
    handles = [io.BytesIO(data) for data in datas]
    for i, handle in enumerate(handles):
        handle.name = f"{i}.png"
    return handles


def test_an_image_whose_pixels_cannot_be_decoded_fails_only_its_own_item(
    register, builtin_folders, ml_client
):
    # given PNGs whose headers read fine, one of them cut off half-way through its pixels
    register(builtin_folders(0), promote=True)
    good, other, cut = png(1), png(4), png(2)[: len(png(2)) // 2]
    # when the cut one is sent among good ones in each form (decoded when they are scored)
    items = ml_client.post(
        URL, {"items": [{"prompt": PROMPT, "image": b64(i)} for i in (good, cut, other)]},
        format="json",
    )  # fmt: skip
    groups = ml_client.post(
        URL,
        {"groups": [{"prompt": OTHER, "items": [{"image": b64(good)}, {"image": b64(cut)},
                                                 {"image": b64(other)}]}]},
        format="json",
    )  # fmt: skip
    multipart = ml_client.post(URL, {"prompt": PROMPT, "image": _files(good, cut)},
                               format="multipart")  # fmt: skip
    # then each answers 200: the cut image's entry names its field and has no score, and the
    # others have the offline scores
    assert items.status_code == 200, items.json()
    body = items.json()
    assert body["failed"] == 1
    assert body["scores"][1] == {
        "mean": None, "std": None, "model_version": 1, "error": "undecodable",
        "field": "items[1].image", "detail": "the image cannot be decoded: image file is truncated",
    }  # fmt: skip
    expected = offline(builtin_folders(0), [PROMPT, PROMPT], [good, other])
    np.testing.assert_allclose(
        [means_stds({"scores": [s]})[0] for s in (body["scores"][0], body["scores"][2])],
        expected, rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    group = groups.json()["groups"][0]
    assert group["scores"][1]["field"] == "groups[0].items[1].image"
    assert group["scores"][1]["rank"] is None and group["scores"][1]["advantage"] is None
    assert sorted(group["ranking"]) == [0, 2]
    assert {r["rank"] for r in (group["scores"][0], group["scores"][2])} == {1, 2}
    assert multipart.json()["scores"][1]["field"] == "image[1]"
    assert multipart.json()["scores"][0]["mean"] is not None


def test_all_or_nothing_makes_an_undecodable_image_a_400_naming_its_field(served, ml_client):
    good, cut = png(1), png(2)[: len(png(2)) // 2]
    items = ml_client.post(
        URL,
        {"all_or_nothing": True,
         "items": [{"prompt": PROMPT, "image": b64(i)} for i in (good, cut)]},
        format="json",
    )  # fmt: skip
    groups = ml_client.post(
        URL,
        {"all_or_nothing": True,
         "groups": [{"prompt": PROMPT, "items": [{"image": b64(good)}]},
                    {"prompt": OTHER, "items": [{"image": b64(good)}, {"image": b64(cut)}]}]},
        format="json",
    )  # fmt: skip
    multipart = ml_client.post(
        URL, {"prompt": PROMPT, "image": _files(good, cut, good), "all_or_nothing": "true"},
        format="multipart",
    )  # fmt: skip
    # group labels b, a, b: the groups are scored as [0, 2] then [1]
    labelled = ml_client.post(
        URL,
        {"prompt": PROMPT, "image": _files(good, cut, good), "group": ["b", "a", "b"],
         "all_or_nothing": "1"},
        format="multipart",
    )  # fmt: skip
    detail = "the image cannot be decoded: image file is truncated"
    assert (items.status_code, items.json()["field"]) == (400, "items[1].image")
    assert items.json()["detail"] == detail
    assert (groups.status_code, groups.json()["field"]) == (400, "groups[1].items[1].image")
    assert (multipart.status_code, multipart.json()["field"]) == (400, "image[1]")
    assert (labelled.status_code, labelled.json()["field"]) == (400, "image[1]")
    # and the process goes on scoring
    again = ml_client.post(URL, {"items": [{"prompt": PROMPT, "image": b64(good)}]}, format="json")
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [{"prompt": PROMPT, "image": "not base64!"}]}, "items[0].image"),
        ({"items": [{"prompt": PROMPT, "image": b64(b"GIF89a not an image")}]}, "items[0].image"),
        ({"items": [{"image": b64(png(1))}]}, "items[0].prompt"),
        ({"items": [{"prompt": PROMPT, "image": b64(png(1)), "candidate": 1}]}, "items[0]"),
        ({"items": [{"prompt": PROMPT, "candidate": 987654321}]}, "items[0].candidate"),
        ({"items": []}, "items"),
        ({"items": [{"prompt": PROMPT, "image": b64(png(1))}], "top_k": 2}, "top_k"),
        ({}, "items"),
        ({"groups": [{"prompt": PROMPT, "items": []}]}, "groups"),
        (
            {"groups": [{"prompt": PROMPT, "items": "x"}, {"items": [{"candidate": 1}]}]},
            "groups[0].items",
        ),
        ({"items": [{"prompt": PROMPT, "candidate": True}]}, "items[0].candidate"),
        ({"items": [{"prompt": PROMPT, "candidate": 1, "seed": 3}]}, "items[0].seed"),
        ({"version": "2", "items": [{"prompt": PROMPT, "candidate": 1}]}, "version"),
        ([1, 2], "body"),
        ({"items": [{"prompt": "", "image": b64(png(1))}]}, "items[0].prompt"),
        (
            {"items": [{"prompt": PROMPT, "candidate": 1}], "all_or_nothing": "yes"},
            "all_or_nothing",
        ),
        ({"pairs": [{"prompt": PROMPT, "a": {"image": b64(png(1))}}]}, "pairs[0]"),
        (
            {"pairs": [{"prompt": PROMPT, "a": {"image": "!"}, "b": {"image": b64(png(1))}}]},
            "pairs[0].a.image",
        ),
        ({"pairs": [], "items": []}, "items"),
        ({"pairs": [{"a": {"candidate": 1}, "b": {"candidate": 2}}], "top_k": 1}, "top_k"),
    ],
)
def test_malformed_requests_are_a_400_naming_the_field(served, ml_client, body, field):
    response = ml_client.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field


def test_malformed_json_is_a_400(served, ml_client):
    response = ml_client.post(URL, b'{"items": [', content_type="application/json")
    assert (response.status_code, response.json()["field"]) == (400, "body")


def test_more_files_than_the_form_allows_is_a_413(served, ml_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = []
    for i in range(3):
        handle = io.BytesIO(png(i))
        handle.name = f"{i}.png"
        files.append(handle)
    response = ml_client.post(URL, {"prompt": PROMPT, "image": files}, format="multipart")
    assert (response.status_code, response.json()["field"]) == (413, "image")


def test_a_prompt_count_that_fits_neither_all_nor_each_image_is_a_400(served, ml_client):
    files = []
    for i in range(3):
        handle = io.BytesIO(png(i))
        handle.name = f"{i}.png"
        files.append(handle)
    response = ml_client.post(URL, {"prompt": [PROMPT, OTHER], "image": files},
                              format="multipart")  # fmt: skip
    assert (response.status_code, response.json()["field"]) == (400, "prompt")


# -- the pairwise and group forms for RL trainers --------------------------------------------


def _phi(z: float) -> float:
    import math

    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_the_pairwise_form_gives_p_a_over_b_from_both_images_mean_and_std(
    register, builtin_folders, ml_client
):
    # given a promoted Gaussian model and two pairs (one by a shared prompt, one per side)
    register(builtin_folders(1), promote=True)
    a0, b0, a1, b1 = png(601), png(602), png(603), png(604)
    response = ml_client.post(
        URL,
        {"pairs": [
            {"prompt": PROMPT, "a": {"image": b64(a0)}, "b": {"image": b64(b0)}},
            {"a": {"prompt": OTHER, "image": b64(a1)}, "b": {"prompt": PROMPT, "image": b64(b1)}},
        ]},
        format="json",
    )  # fmt: skip
    # then each pair carries both scores and Phi((mu_a - mu_b) / sqrt(sd_a^2 + sd_b^2))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model"]["name"] == "spatial-rm" and body["model"]["version"] == 1
    assert body["duration_ms"] > 0 and body["failed"] == 0
    scores = offline(builtin_folders(1), [PROMPT, PROMPT, OTHER, PROMPT], [a0, b0, a1, b1])
    for k, pair in enumerate(body["pairs"]):
        (mean_a, std_a), (mean_b, std_b) = scores[2 * k], scores[2 * k + 1]
        assert pair["a"]["mean"] == pytest.approx(mean_a, rel=1e-5, abs=1e-6)
        assert pair["b"]["mean"] == pytest.approx(mean_b, rel=1e-5, abs=1e-6)
        expected = _phi((mean_a - mean_b) / (std_a**2 + std_b**2) ** 0.5)
        assert pair["p_a_over_b"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_the_group_form_gives_each_image_its_rank_and_group_normalised_advantage(
    register, builtin_folders, ml_client
):
    register(builtin_folders(1), promote=True)
    group = [png(700 + i) for i in range(5)]
    response = ml_client.post(
        URL, {"groups": [{"prompt": PROMPT, "items": [{"image": b64(i)} for i in group]}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    answer = response.json()["groups"][0]
    means = np.array([m for m, _ in offline(builtin_folders(1), [PROMPT] * 5, group)])
    assert answer["mean"] == pytest.approx(means.mean(), rel=1e-5)
    assert answer["std"] == pytest.approx(means.std(), rel=1e-4)
    np.testing.assert_allclose(
        [s["advantage"] for s in answer["scores"]], (means - means.mean()) / means.std(),
        rtol=1e-3, atol=1e-4,
    )  # fmt: skip
    assert [s["rank"] for s in answer["scores"]] == [
        sorted(range(5), key=lambda i: -means[i]).index(i) + 1 for i in range(5)
    ]
