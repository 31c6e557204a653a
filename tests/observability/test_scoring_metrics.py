"""Scoring latency and batch sizes, observed by a real scoring request on a real (untrained,
built-in) reward model."""

import base64
import io

import numpy as np
from PIL import Image
from prometheus_client import REGISTRY

from tests.reward.conftest import (  # noqa: F401 (fixtures)
    _reward_cache,
    builtin_folders,
    register,
)


def _png(seed: int) -> str:
    out = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_a_scoring_request_observes_its_latency_and_its_batch_size(
    register,  # noqa: F811
    builtin_folders,  # noqa: F811
    ml_client,
):
    register(builtin_folders(0), promote=True)
    count = REGISTRY.get_sample_value("spatialprefs_scoring_seconds_count") or 0
    sizes = REGISTRY.get_sample_value("spatialprefs_scoring_batch_size_sum") or 0
    le_4 = REGISTRY.get_sample_value("spatialprefs_scoring_batch_size_bucket", {"le": "4.0"}) or 0

    items = [{"prompt": "a cat left of a dog", "image": _png(i)} for i in range(5)]
    response = ml_client.post("/api/reward/score", {"items": items}, format="json")

    assert response.status_code == 200, response.json()
    assert REGISTRY.get_sample_value("spatialprefs_scoring_seconds_count") == count + 1
    assert REGISTRY.get_sample_value("spatialprefs_scoring_seconds_sum") > 0
    assert REGISTRY.get_sample_value("spatialprefs_scoring_batch_size_sum") == sizes + 5
    # 5 images fall in the bucket le=8, not le=4
    assert (
        REGISTRY.get_sample_value("spatialprefs_scoring_batch_size_bucket", {"le": "4.0"}) == le_4
    )
