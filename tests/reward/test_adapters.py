"""The trainers' own reward clients against their drop-in routes: Flow-Factory's
`RemoteRewardClient` (`POST <server_url>/compute`, `GET <server_url>/health`) and OpenRLHF's
remote reward model request (`POST <remote_rm_url>` with query/prompts/labels), sent over HTTP
with `requests` and credentials in the URL as those clients send them (neither sets an
Authorization header of its own), and answered with the engine's offline scores."""

from __future__ import annotations

import base64
import urllib.parse

import numpy as np
import pytest
import requests
from rest_framework.test import APIClient

from accounts.services import api_token_create
from annotation.services.annotators import user_create
from config.roles import Role
from tests.reward.test_scoring_api import OTHER, PROMPT, b64, offline, png

FF = "/api/reward/flow-factory"
RLHF = "/api/reward/openrlhf/get_reward"


def with_token(url: str, token: str) -> str:
    """`http://token:<key>@host:port/...`: how both clients are given credentials."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=f"token:{token}@{parts.netloc}").geturl()


def flow_factory_payload(prompts: list[str], images: list[bytes]) -> dict:
    """What flow_factory.rewards.my_reward_remote._build_payload sends for images."""
    return {"prompt": prompts, "image": [b64(i) for i in images], "video": None,
            "condition_images": None, "condition_videos": None}  # fmt: skip


@pytest.fixture
def rl_token(db) -> str:
    user = user_create(username="rl-adapter", password="rl-pass-1234", role=Role.ML)
    return api_token_create(user=user).key


@pytest.mark.django_db(transaction=True)
def test_flow_factory_remote_client_gets_health_and_the_offline_rewards(
    live_server, register, builtin_folders, rl_token
):
    # given a promoted model and Flow-Factory's server_url with the token in it
    model = register(builtin_folders(1), promote=True)
    server_url = with_token(live_server.url + FF, rl_token)
    session = requests.Session()
    # when its client checks health, then computes rewards for 3 (prompt, image) samples
    health = session.get(f"{server_url}/health", timeout=5.0)
    images = [png(800 + i) for i in range(3)]
    prompts = [PROMPT, OTHER, PROMPT]
    response = session.post(f"{server_url}/compute", json=flow_factory_payload(prompts, images),
                            timeout=60.0)  # fmt: skip
    # then health is ok and names the promoted model, and the rewards are the offline means
    assert health.ok and health.json()["status"] == "ok"
    assert health.json()["model"] == {"id": model.pk, "name": "spatial-rm", "version": 1}
    assert response.status_code == 200, response.text
    data = response.json()
    assert not data.get("error")
    np.testing.assert_allclose(
        data["rewards"], [m for m, _ in offline(builtin_folders(1), prompts, images)],
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    assert data["model"]["version"] == 1 and data["duration_ms"] > 0


@pytest.mark.django_db(transaction=True)
def test_openrlhf_remote_reward_request_gets_rewards_scores_and_extra_logs(
    live_server, register, builtin_folders, rl_token
):
    register(builtin_folders(0), promote=True)
    images = [png(900 + i) for i in range(2)]
    payload = {"query": [b64(i) for i in images], "prompts": [PROMPT, OTHER],
               "labels": ["", ""]}  # fmt: skip
    # as OpenRLHF's _fetch_rewards_via_http posts it: json=payload to remote_rm_url
    response = requests.post(with_token(live_server.url + RLHF, rl_token), json=payload,
                             timeout=180)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    expected = offline(builtin_folders(0), [PROMPT, OTHER], images)
    np.testing.assert_allclose(body["rewards"], [m for m, _ in expected], rtol=1e-5, atol=1e-6)
    assert body["scores"] == body["rewards"]
    np.testing.assert_allclose(body["extra_logs"]["reward_std"], [s for _, s in expected],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert body["model"]["name"] == "spatial-rm"


def test_health_without_a_promoted_model_is_a_503(register, builtin_folders, ml_client):
    register(builtin_folders(0))  # registered, not promoted
    response = ml_client.get(f"{FF}/health")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        (f"{FF}/compute", {"prompt": [PROMPT], "image": ["not base64!"]}, 400, "image[0]"),
        (f"{FF}/compute", {"prompt": [PROMPT, OTHER], "image": [b64(png(1))]}, 400, "prompt"),
        (f"{FF}/compute", {"prompt": [PROMPT], "images": [b64(png(1))], "video": [["x"]]}, 400,
         "video"),
        (f"{FF}/compute", {"prompt": [PROMPT], "image": [b64(png(1))], "seed": 1}, 400, "seed"),
        (f"{FF}/compute", {"prompt": [PROMPT]}, 400, "image"),
        (f"{FF}/compute", {"prompts": PROMPT, "images": [b64(png(1))], "model": "nope"}, 404,
         "model"),
        (RLHF, {"query": [b64(png(1))]}, 400, "prompts"),
        (RLHF, {"prompts": [PROMPT]}, 400, "query"),
        (RLHF, {"query": [b64(png(1))], "prompts": [""]}, 400, "prompts[0]"),
        (RLHF, [1], 400, "body"),
    ],
)  # fmt: skip
def test_bad_adapter_payloads_are_a_4xx_naming_the_field(
    register, builtin_folders, ml_client, path, body, status, field
):
    register(builtin_folders(0), promote=True)
    response = ml_client.post(path, body, format="json")
    assert response.status_code == status, response.json()
    assert response.json().get("field") == field


def test_an_adapter_takes_json_only(register, builtin_folders, ml_client):
    register(builtin_folders(0), promote=True)
    form = ml_client.post(f"{FF}/compute", {"prompt": PROMPT}, format="multipart")
    assert (form.status_code, form.json()["field"]) == (415, "content_type")


def test_an_undecodable_image_makes_an_adapter_request_a_400_naming_it(
    register, builtin_folders, ml_client
):
    # the clients put one float per sample into a tensor: no partial answers on these routes
    register(builtin_folders(0), promote=True)
    cut = png(2)[: len(png(2)) // 2]
    response = ml_client.post(
        f"{FF}/compute", {"prompt": PROMPT, "image": [b64(png(1)), b64(cut)]}, format="json"
    )
    assert (response.status_code, response.json()["field"]) == (400, "image[1]")


def test_adapters_take_the_scoring_rules_token_or_basic_and_refuse_annotators(
    register, builtin_folders, rl_token, annotator
):
    register(builtin_folders(0), promote=True)
    body = flow_factory_payload([PROMPT], [png(5)])
    basic = base64.b64encode(f"any:{rl_token}".encode()).decode()
    as_basic = APIClient(HTTP_AUTHORIZATION=f"Basic {basic}")
    as_token = APIClient(HTTP_AUTHORIZATION=f"Token {rl_token}")
    assert as_basic.post(f"{FF}/compute", body, format="json").status_code == 200
    assert as_token.post(RLHF, {"query": body["image"], "prompts": [PROMPT]},
                         format="json").status_code == 200  # fmt: skip
    wrong = base64.b64encode(b"token:not-a-token").decode()
    refused = APIClient(HTTP_AUTHORIZATION=f"Basic {wrong}").post(f"{FF}/compute", body,
                                                                 format="json")  # fmt: skip
    assert refused.status_code == 401
    assert APIClient().get(f"{FF}/health").status_code == 401
    annotator_client = APIClient()
    annotator_client.force_authenticate(user=annotator)
    assert annotator_client.post(f"{FF}/compute", body, format="json").status_code == 403
    assert annotator_client.post(RLHF, {"query": body["image"], "prompts": [PROMPT]},
                                 format="json").status_code == 403  # fmt: skip
