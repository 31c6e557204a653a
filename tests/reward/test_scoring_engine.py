"""The scoring engine on its own (no database): where uploads are decoded, what one undecodable
upload does to the requests batched with it, and the torch threads of the forward passes."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from training_bridge.scoring.engine import Batcher, LoadedModel, ModelRef, ScoringEngine, _Job
from training_bridge.scoring.payloads import ImageUndecodable, image_open, score_limits
from training_bridge.trainer.checkpoint import reward_model_load

PROMPT = "a photo of a cat to the left of a dog"
OTHER = "a photo of a cup above a lamp"
REF = ModelRef(id=1, name="engine-rm", version=1, artifact_key="reward-models/engine")


def png(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def truncated(data: bytes) -> bytes:
    """PNG bytes whose header reads fine and whose pixel data stops half-way."""
    return data[: len(data) // 2]


def uploads(datas: list[bytes]) -> list[Image.Image]:
    """As the API hands them over: opened and checked, not decoded."""
    return [image_open(data, score_limits(), field=f"items[{i}].image") for i, data in
            enumerate(datas)]  # fmt: skip


def offline(folder, captions, images) -> list[tuple[float, float | None]]:
    return [(s.mean, s.std) for s in reward_model_load(folder).score(captions, images)]


def pairs(scores) -> list[tuple[float, float | None]]:
    return [(s.mean, s.std) for s in scores]


class RecordingModel(LoadedModel):
    """The real model, noting in which thread it prepares and with how many torch threads its
    forward passes run."""

    def __init__(self, folder) -> None:
        super().__init__(REF, reward_model_load(folder), folder, 0.0)
        self.prepared_in: list[str] = []
        self.torch_threads: list[int] = []

    def prepare_all(self, images):
        self.prepared_in.append(threading.current_thread().name)
        return super().prepare_all(images)

    def forward(self, captions, arrays, *, batch_size):
        self.torch_threads.append(torch.get_num_threads())
        return super().forward(captions, arrays, batch_size=batch_size)


@pytest.mark.parametrize("in_requests", [None, True])
def test_uploads_are_decoded_once_where_the_device_says_and_score_as_offline(
    builtin_folders, clip_folder, in_requests
):
    # given an engine on CPU (None: it decides, so the batching thread prepares) or one told to
    # prepare in the request threads, and uploads opened but not decoded
    engine = ScoringEngine(fetch=lambda ref: ref, prepare_in_requests=in_requests)
    datas = [png(i) for i in range(3)] + [png(9, size=48)]
    captions = [PROMPT, OTHER, PROMPT, OTHER]
    for folder in (builtin_folders(0), clip_folder):
        model = RecordingModel(folder)
        # when they are scored
        scores = engine.score(model, captions, uploads(datas))
        # then the scores are the checkpoint's offline ones, prepared in the expected thread
        np.testing.assert_allclose(
            pairs(scores), offline(folder, captions, datas), rtol=1e-5, atol=1e-6
        )
        expected = "reward-scoring-batcher" if in_requests is None else "MainThread"
        assert model.prepared_in == [expected]


def test_an_upload_that_cannot_be_decoded_fails_its_own_request_not_those_batched_with_it(
    builtin_folders,
):
    # given three requests waiting together, the second with a truncated image at position 1
    model = RecordingModel(builtin_folders(0))
    first, third = [png(1), png(2)], [png(5)]
    jobs = [
        _Job(model, [PROMPT] * 2, uploads(first)),
        _Job(model, [PROMPT] * 3, uploads([png(3), truncated(png(4)), png(6)])),
        _Job(model, [OTHER], uploads(third)),
    ]
    batcher = Batcher(max_batch=64)
    # when the batching thread runs them as one group
    batcher._run(jobs)
    # then the second fails with the position of its bad image, the others get their scores
    assert isinstance(jobs[1].error, ImageUndecodable)
    assert (jobs[1].error.position, jobs[1].error.detail) == (
        1, "the image cannot be decoded: image file is truncated"
    )  # fmt: skip
    assert jobs[1].scores is None
    assert jobs[0].error is None and jobs[2].error is None
    np.testing.assert_allclose(
        pairs(jobs[0].scores), offline(builtin_folders(0), [PROMPT] * 2, first), rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(
        pairs(jobs[2].scores), offline(builtin_folders(0), [OTHER], third), rtol=1e-5, atol=1e-6
    )
    # and the two good requests shared one forward pass
    assert (batcher.passes, batcher.requests, batcher.images) == (1, 2, 3)


def test_stored_bytes_that_cannot_be_decoded_raise_the_decoders_own_error(builtin_folders):
    # given stored image bytes (a candidate's), not an upload
    engine = ScoringEngine(fetch=lambda ref: ref)
    model = RecordingModel(builtin_folders(0))
    # when they cannot be decoded, the caller gets Pillow's error, as offline scoring raises it
    with pytest.raises(OSError, match="truncated"):
        engine.score(model, [PROMPT], [truncated(png(7))])
    # and the engine goes on serving
    np.testing.assert_allclose(
        pairs(engine.score(model, [PROMPT], [png(7)])),
        offline(builtin_folders(0), [PROMPT], [png(7)]), rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_the_forward_passes_run_with_the_configured_torch_threads(builtin_folders):
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    try:
        # given an engine configured for `wanted` intra-op threads (this thread has `before`)
        engine = ScoringEngine(fetch=lambda ref: ref, num_threads=wanted)
        model = RecordingModel(builtin_folders(0))
        # when it scores, the batching thread's forward pass runs with `wanted` threads
        engine.score(model, [PROMPT], [png(8)])
        assert model.torch_threads == [wanted]
    finally:
        torch.set_num_threads(before)
