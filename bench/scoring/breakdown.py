"""Where a scoring request's CPU goes, in one process (no HTTP server, no other client).

    .venv/bin/python bench/scoring/breakdown.py --model builtin --batch 64

CPU time per call (process time, so other sessions on the machine matter less than for wall
time), median of --rounds rounds of --calls calls (the stages take turns in each round, in a
thread of their own), for the stages of one request of --batch images:

- direct: `reward_model_load(folder).score(prompts, png_bytes)` (decode, transform, forward);
- forward: the engine's forward pass on images already prepared (`LoadedModel.forward`: the
  trainer's scorer on the transform's uint8 arrays);
- open: the API's check of the uploaded bytes (`payloads.image_open`: format and pixel count
  from the header, nothing decoded);
- open + prepare: that, then decoding and transforming them once into the network's input
  (`LoadedModel.prepare_all`, what the batching thread does first);
- engine: open, then `engine.score` (hand-off to the batching thread, prepare, forward);
- service: open, then `reward_score` (model lookup, engine);
- API: the whole view through Django's test client (token auth, role check, JSON with base64,
  open, service, response), PostgreSQL database --db.

Every stage opens the uploads afresh (an opened Pillow image keeps its pixels once decoded, so
reusing one would leave the decoding out).

Then 4 threads send 10 requests each to the engine at once: how many forward passes ran.
`--profile N`: instead, cProfile N calls of the API stage (the request thread only: the
batching thread's work shows as the wait for it) and print the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import run  # noqa: E402
from score_client import json_payload  # noqa: E402


def cpu_ms(stages, calls: int, rounds: int) -> dict[str, float]:
    """Median CPU ms per call of each stage; the stages take turns within every round, so that
    a change in the machine's load hits them alike."""
    samples: dict[str, list[float]] = {label: [] for label, _ in stages}
    for _, fn in stages:
        fn()
    for _ in range(rounds):
        for label, fn in stages:
            started = time.process_time()
            for _ in range(calls):
                fn()
            samples[label].append(1000 * (time.process_time() - started) / calls)
    return {label: statistics.median(values) for label, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=run.MODELS, default="builtin")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="sp_bench_scoring")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead: profile N API calls' request thread (cProfile, own time)",
    )
    args = parser.parse_args()

    work = run.in_process_setup(args.pg, args.db, args.torch_threads)
    import torch
    from rest_framework.test import APIClient

    from training_bridge.reward_models.scoring.payloads import image_open, score_limits
    from training_bridge.reward_models.selectors.reward_models import reward_model_ref
    from training_bridge.reward_models.services.scoring import (
        ScoreInput,
        reward_score,
        scoring_engine,
    )
    from training_bridge.training.trainer.checkpoint import reward_model_load

    torch.set_num_threads(args.torch_threads)
    name, folder = run.models_register(work, str(int(time.time())), [args.model])[args.model]
    prompts, images = run.images_make(args.batch, 64)
    limits = score_limits()
    scorer = reward_model_load(folder)
    engine = scoring_engine()
    loaded = engine.model(reward_model_ref(name=name))
    prepared = loaded.prepare_all([image_open(data, limits, field="image") for data in images])

    def opened() -> list:
        return [image_open(data, limits, field="image") for data in images]

    def inputs() -> list[ScoreInput]:
        return [ScoreInput(field="i", prompt=p, image=i) for p, i in
                zip(prompts, opened(), strict=True)]  # fmt: skip

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {run.token_make()}")
    body = json.dumps(json_payload(prompts, images, model=name)).encode()

    def api() -> None:
        response = client.post("/api/reward/score", body, content_type="application/json")
        assert response.status_code == 200, response.content

    if args.profile:
        api()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.profile):
            api()
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        return
    stages = [
        ("direct", lambda: scorer.score(prompts, images, batch_size=args.batch)),
        ("forward", lambda: loaded.forward(prompts, prepared, batch_size=args.batch)),
        ("open", opened),
        ("open + prepare", lambda: loaded.prepare_all(opened())),
        ("engine", lambda: engine.score(loaded, prompts, opened())),
        ("service", lambda: reward_score(inputs=inputs(), name=name)),
        ("API", api),
    ]
    # in a thread of their own, as run.py's direct calls and the server's batching thread (the
    # main thread's malloc arena makes the built-in model's forward pass slower and noisier)
    results: dict[str, float] = {}
    worker = threading.Thread(
        target=lambda: results.update(cpu_ms(stages, args.calls, args.rounds)), name="stages"
    )
    worker.start()
    worker.join()
    print(f"model {args.model}, batch {args.batch}, torch {args.torch_threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| stage | CPU ms per request | vs direct |")
    print("|---|---|---|")
    for label, value in results.items():
        print(f"| {label} | {value:.2f} | {value / results['direct'] - 1:+.1%} |")
    # batching: 4 threads score 10 requests each at the same time
    before = engine.stats()

    def client() -> None:
        for _ in range(10):
            engine.score(loaded, prompts, opened())

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = engine.stats()
    print(f"4 threads x 10 requests of {args.batch} images: "
          f"{after['requests'] - before['requests']} requests ran as "
          f"{after['forward_passes'] - before['forward_passes']} forward passes of at most "
          f"{engine.batcher.max_batch} images")  # fmt: skip


if __name__ == "__main__":
    main()
