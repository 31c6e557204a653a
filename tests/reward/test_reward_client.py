"""training_bridge/reward_models/client.py against the live test server: JSON only, the
retryable answers (a busy engine's 503) retried with the server's Retry-After, a 4xx never
retried, Flow-GRPO's reward-function signature, the enqueue/poll pair; and the module imports
no Django."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from accounts.services import api_token_create
from annotation.services.annotators import user_create
from config.roles import Role
from tests.reward.held import engine_held
from tests.reward.test_scoring_api import OTHER, PROMPT, offline, png
from training_bridge.reward_models.client import (
    RewardClient,
    RewardServerError,
    flow_grpo_reward,
    image_bytes,
)
from training_bridge.reward_models.services.scoring import scoring_engine


@pytest.fixture
def token(transactional_db) -> str:
    user = user_create(username="grpo-client", password="grpo-pass-123", role=Role.ML)
    return api_token_create(user=user).key


def test_the_client_module_imports_without_django():
    code = ("import sys; import training_bridge.reward_models.client as c; "
            "print(any(m.split('.')[0] == 'django' for m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.django_db(transaction=True)
def test_a_busy_engine_is_a_503_the_client_retries_after_its_retry_after(
    live_server, register, builtin_folders, token, settings
):
    # given a promoted model and an engine that takes at most 4 images at once
    register(builtin_folders(0), promote=True)
    settings.REWARD_SCORING_MAX_PENDING = 4
    images = [png(1000 + i) for i in range(4)]
    client = RewardClient(live_server.url, token, backoff=0.05)
    engine = scoring_engine()
    refused = engine.stats()["refused"]
    # when the engine is busy with another pass as the client sends 4 images, and the pass ends
    # once the server has refused the client once
    with engine_held(images=1) as held:

        def free_after_the_refusal() -> None:
            for _ in range(30_000):
                if engine.stats()["refused"] > refused:
                    break
                threading.Event().wait(0.001)
            held.gate.set()

        opener = threading.Thread(target=free_after_the_refusal)
        opener.start()
        answer = client.score(images, PROMPT)
        opener.join()
    # then the client got a 503 first, waited and retried, and has the offline scores
    assert engine.stats()["refused"] == refused + 1
    assert client.last_attempts == 2
    np.testing.assert_allclose(
        [(s["mean"], s["std"]) for s in answer["scores"]],
        offline(builtin_folders(0), [PROMPT] * 4, images), rtol=1e-5, atol=1e-6,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_4xx_is_never_retried(live_server, register, builtin_folders, token):
    register(builtin_folders(0), promote=True)
    client = RewardClient(live_server.url, token, backoff=0.05)
    with pytest.raises(RewardServerError) as unknown:
        RewardClient(live_server.url, token, model="no-such-model").score([png(1)], PROMPT)
    cut = png(2)[: len(png(2)) // 2]
    with pytest.raises(RewardServerError) as undecodable:
        client.score([png(1), cut], PROMPT, all_or_nothing=True)
    with pytest.raises(RewardServerError) as unauthorised:
        RewardClient(live_server.url, "wrong-token").score([png(1)], PROMPT)
    assert (unknown.value.status, unknown.value.attempts) == (404, 1)
    assert (undecodable.value.status, undecodable.value.attempts) == (400, 1)
    assert undecodable.value.body["field"] == "items[1].image"
    assert (unauthorised.value.status, unauthorised.value.attempts) == (401, 1)
    # and without all_or_nothing the good image is scored and the cut one reported
    answer = client.score([png(1), cut], PROMPT)
    assert answer["failed"] == 1 and answer["scores"][1]["field"] == "items[1].image"


@pytest.mark.django_db(transaction=True)
def test_flow_grpo_reward_function_scores_a_tensor_batch_as_the_checkpoint_does(
    live_server, register, builtin_folders, token
):
    # given Flow-GRPO's sample batch: a float tensor NCHW in [0, 1], 5 images, batches of 2
    register(builtin_folders(1), promote=True)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prompts = [PROMPT, OTHER, PROMPT, OTHER, PROMPT]
    reward_fn = flow_grpo_reward(live_server.url, token, batch_size=2)
    # when the trainer calls it as a reward function
    scores, info = reward_fn(images, prompts, [{}] * 5)
    # then the scores are the checkpoint's means of the same PNGs, with stds and the model
    expected = offline(builtin_folders(1), prompts, image_bytes(images))
    assert scores.shape == (5,)
    np.testing.assert_allclose(scores, [m for m, _ in expected], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info["std"], [s for _, s in expected], rtol=1e-5, atol=1e-5)
    assert info["model"]["name"] == "spatial-rm" and info["model"]["version"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_client_enqueues_a_group_and_polls_its_answer(
    live_server, register, builtin_folders, token
):
    register(builtin_folders(0), promote=True)
    client = RewardClient(live_server.url, token)
    group = [png(1100 + i) for i in range(6)]
    from tests.reward.test_scoring_api import b64

    body = {"groups": [{"prompt": PROMPT, "items": [{"image": b64(i)} for i in group]}]}
    with engine_held():
        job_id = client.submit(body)
        pending = client.job(job_id)
    answer = client.wait(job_id, every=0.05, timeout=60)
    assert pending is None
    means = [m for m, _ in offline(builtin_folders(0), [PROMPT] * 6, group)]
    np.testing.assert_allclose([s["mean"] for s in answer["groups"][0]["scores"]], means,
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_image_bytes_turns_flow_grpo_tensors_arrays_and_pillow_images_into_the_same_pngs():
    from io import BytesIO

    from PIL import Image

    # given one batch as Flow-GRPO may hold it: a float tensor NCHW in [0, 1], and as uint8 NHWC
    tensor = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    uint8 = (tensor * 255).round().clamp(0, 255).to(torch.uint8).numpy().transpose(0, 2, 3, 1)
    pillow = [Image.fromarray(a) for a in uint8]
    # then every form gives PNGs of the same pixels, and bytes pass through unchanged
    forms = [image_bytes(tensor), image_bytes(uint8), image_bytes(pillow),
             image_bytes(uint8.astype(np.float32) / 255)]  # fmt: skip
    for pngs in forms:
        decoded = [np.asarray(Image.open(BytesIO(d))) for d in pngs]
        np.testing.assert_array_equal(decoded, uint8)
    assert image_bytes([b"\x89PNG..."]) == [b"\x89PNG..."]


@pytest.mark.django_db(transaction=True)
def test_the_client_scores_groups_and_pairs(live_server, register, builtin_folders, token):
    register(builtin_folders(1), promote=True)
    client = RewardClient(live_server.url, token)
    group = [png(1300 + i) for i in range(4)]
    a, b = png(1400), png(1401)
    grouped = client.score_groups([(PROMPT, group)], top_k=1)
    paired = client.score_pairs([(OTHER, a, b)])
    means = [m for m, _ in offline(builtin_folders(1), [PROMPT] * 4, group)]
    assert grouped["groups"][0]["top"] == [int(np.argmax(means))]
    (mean_a, std_a), (mean_b, std_b) = offline(builtin_folders(1), [OTHER] * 2, [a, b])
    z = (mean_a - mean_b) / (std_a**2 + std_b**2) ** 0.5
    expected = 0.5 * (1 + float(torch.erf(torch.tensor(z / 2**0.5, dtype=torch.float64))))
    assert paired["pairs"][0]["p_a_over_b"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
