"""The scoring engine on its own (no database): which requests share a forward pass, where
uploads are decoded, what one undecodable upload does to the requests batched with it, and the
torch threads of the forward passes."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from training_bridge.reward_models.scoring.engine import (
    Batcher,
    LoadedModel,
    ModelRef,
    ScoringEngine,
)
from training_bridge.reward_models.scoring.payloads import (
    ImageUndecodable,
    image_open,
    score_limits,
)
from training_bridge.training.trainer.checkpoint import reward_model_load

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


class GatedModel:
    """A stand-in for a loaded model whose first forward pass waits until `gate` is set, so
    that requests queue up behind it; each pass is recorded, and an image's score is its own
    array (a number), so every request can check it got its own."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.passes: list[list[int]] = []

    def forward(self, captions, arrays, *, batch_size):
        self.entered.set()
        self.gate.wait()
        self.passes.append(list(arrays))
        return list(arrays)


def _submit_in_thread(batcher, model, arrays: list, results: dict, key) -> threading.Thread:
    def run() -> None:
        try:
            results[key] = batcher.submit(model, ["p"] * len(arrays), [None] * len(arrays), arrays)
        except Exception as exc:  # noqa: BLE001 - the test reads it
            results[key] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _until(condition) -> None:
    """Wait for another thread to reach a state (a guard against a hang, not a timing)."""
    for _ in range(10_000):
        if condition():
            return
        threading.Event().wait(0.001)
    raise AssertionError("the other thread never got there")


def _queue_behind_a_running_pass(batcher, first_model, jobs: dict) -> tuple[dict, list]:
    """Start a pass of `first_model` that waits at its gate, then hand over `jobs`
    ({key: (model, arrays)}) one after the other, so they wait in that order."""
    results: dict = {}
    threads = [_submit_in_thread(batcher, first_model, [0], results, "first")]
    first_model.entered.wait()
    for count, (key, (model, arrays)) in enumerate(jobs.items(), start=1):
        threads.append(_submit_in_thread(batcher, model, arrays, results, key))
        _until(lambda count=count: batcher.waiting == count)
    return results, threads


def test_requests_waiting_behind_a_pass_share_the_next_up_to_max_batch_and_one_model_a_pass():
    # given a pass running and four requests waiting behind it: three for model m (3, 4 and 2
    # images) and one for model n
    batcher = Batcher(max_batch=8)
    m, n = GatedModel(), GatedModel()
    n.gate.set()
    results, threads = _queue_behind_a_running_pass(
        batcher, m, {"b": (m, [1, 2, 3]), "c": (m, [4, 5, 6, 7]), "d": (m, [8, 9]), "e": (n, [10])}
    )
    # when the running pass ends
    m.gate.set()
    for thread in threads:
        thread.join()
    # then the first two waiting requests share a pass (7 of 8 images), the third does not fit,
    # the other model's request runs on its own, and every request got its own scores
    assert m.passes == [[0], [1, 2, 3, 4, 5, 6, 7], [8, 9]]
    assert n.passes == [[10]]
    assert results == {"first": [0], "b": [1, 2, 3], "c": [4, 5, 6, 7], "d": [8, 9], "e": [10]}
    assert (batcher.passes, batcher.requests, batcher.images) == (4, 5, 11)
    assert batcher.waiting == 0


def test_a_pass_with_room_waits_for_more_requests_and_starts_as_soon_as_it_is_full():
    # given a batcher whose passes wait up to a minute for more requests while they have room
    batcher = Batcher(max_batch=8, max_wait=60.0)
    m = GatedModel()
    m.gate.set()
    results: dict = {}
    # when a request of 3 images comes, then one of 5
    first = _submit_in_thread(batcher, m, [1, 2, 3], results, "a")
    second = _submit_in_thread(batcher, m, [4, 5, 6, 7, 8], results, "b")
    first.join(timeout=30)
    second.join(timeout=30)
    # then they share one pass, which ran once it was full (not after the minute)
    assert not first.is_alive() and not second.is_alive()
    assert m.passes == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert results == {"a": [1, 2, 3], "b": [4, 5, 6, 7, 8]}


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
    # given three requests waiting together behind a running pass, the second with a
    # truncated image at position 1
    model = RecordingModel(builtin_folders(0))
    first, third = [png(1), png(2)], [png(5)]
    batcher = Batcher(max_batch=64)
    gated = GatedModel()
    results: dict = {}
    threads = [_submit_in_thread(batcher, gated, [0], results, "running")]
    gated.entered.wait()
    waiting = {
        "first": ([PROMPT] * 2, uploads(first)),
        "bad": ([PROMPT] * 3, uploads([png(3), truncated(png(4)), png(6)])),
        "third": ([OTHER], uploads(third)),
    }
    for count, (key, (captions, images)) in enumerate(waiting.items(), start=1):

        def run(key=key, captions=captions, images=images) -> None:
            try:
                results[key] = batcher.submit(model, captions, images)
            except ImageUndecodable as exc:
                results[key] = exc

        threads.append(threading.Thread(target=run))
        threads[-1].start()
        _until(lambda count=count: batcher.waiting == count)
    # when the running pass ends and the three are taken together
    gated.gate.set()
    for thread in threads:
        thread.join()
    # then the second fails with the position of its bad image, the others get their scores
    assert isinstance(results["bad"], ImageUndecodable)
    assert (results["bad"].position, results["bad"].detail) == (
        1, "the image cannot be decoded: image file is truncated"
    )  # fmt: skip
    np.testing.assert_allclose(
        pairs(results["first"]), offline(builtin_folders(0), [PROMPT] * 2, first), rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(
        pairs(results["third"]), offline(builtin_folders(0), [OTHER], third), rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip
    # and the two good requests shared one forward pass (after the gated one)
    assert (batcher.passes, batcher.requests, batcher.images) == (2, 3, 4)


def test_per_item_an_undecodable_upload_gets_its_error_in_its_place_and_the_rest_scores(
    builtin_folders,
):
    # given an engine on CPU and one request whose second upload is cut half-way
    engine = ScoringEngine(fetch=lambda ref: ref)
    model = LoadedModel(REF, reward_model_load(builtin_folders(0)), builtin_folders(0), 0.0)
    good = [png(1), png(2)]
    images = uploads([good[0], truncated(png(4)), good[1]])
    # when it is scored per item (the batching thread prepares), and prepared in the request
    scores = engine.score(model, [PROMPT, OTHER, OTHER], images, per_item=True)
    in_request = ScoringEngine(fetch=lambda ref: ref, prepare_in_requests=True).score(
        model, [PROMPT, OTHER, OTHER], uploads([good[0], truncated(png(4)), good[1]]),
        per_item=True,
    )  # fmt: skip
    # then the cut one is its ImageUndecodable (position 1) and the others their offline scores
    for answer in (scores, in_request):
        assert isinstance(answer[1], ImageUndecodable) and answer[1].position == 1
        np.testing.assert_allclose(
            pairs([answer[0], answer[2]]), offline(builtin_folders(0), [PROMPT, OTHER], good),
            rtol=1e-5, atol=1e-6,
        )  # fmt: skip


def test_past_its_pending_limit_the_engine_refuses_and_a_lone_request_is_always_taken():
    from training_bridge.reward_models.scoring.engine import EngineBusy

    batcher = Batcher(max_batch=64, max_pending=3)
    m = GatedModel()
    m.gate.set()
    # an idle engine takes a request larger than the limit (a refusal must never be permanent)
    assert batcher.submit(m, ["p"] * 5, [None] * 5, [1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
    # with a pass of 1 image running, 3 more would pass the limit, 2 fit
    held = GatedModel()
    results: dict = {}
    running = _submit_in_thread(batcher, held, [0], results, "running")
    held.entered.wait()
    with pytest.raises(EngineBusy) as refused:
        batcher.submit(m, ["p"] * 3, [None] * 3, [6, 7, 8])
    fits = _submit_in_thread(batcher, m, [9, 10], results, "fits")
    _until(lambda: batcher.pending == 3)
    held.gate.set()
    running.join()
    fits.join()
    assert (refused.value.status_code, refused.value.retry_after_seconds) == (503, 1)
    assert (batcher.refused, batcher.pending) == (1, 0)
    assert results == {"running": [0], "fits": [9, 10]}


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
