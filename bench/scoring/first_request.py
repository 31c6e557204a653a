"""The first scoring request of a freshly started server, with the promoted model preloaded at
start (REWARD_SCORING_PRELOAD, the default since issue 17) and without.

    .venv/bin/python bench/scoring/first_request.py              # clip-wide, 3 rounds
    .venv/bin/python bench/scoring/first_request.py --models builtin clip-wide --delay 15

For each model (a random-weight checkpoint written by the trainer's code, promoted under
REWARD_MODEL_NAME) and mode, gunicorn (1 worker, 4 threads) starts with an empty checkpoint
cache; --delay seconds after its port answers (a trainer connecting a little after the server
started), one request of --batch base64 PNGs is sent, then a second one: the latency of each
(ms). Without preloading, the first pays for importing torch and transformers, fetching the
checkpoint and loading it. Modes take turns in each round; medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

from training_bridge.reward_models.client import RewardClient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["clip-wide"], choices=run.MODELS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--db", default="sp_bench_first_request")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    work = run.in_process_setup(args.pg, args.db, 1)
    models = run.models_register(work, str(int(time.time())), args.models)
    token = run.token_make()
    prompts, images = run.images_make(args.batch, 64)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    load_start = os.getloadavg()[0]
    for _ in range(args.rounds):
        for kind in args.models:
            for mode in ("off", "on"):
                cache = Path(tempfile.mkdtemp(prefix="first-cache-", dir=work))
                env = {
                    "DATABASE_URL": os.environ["DATABASE_URL"],
                    "SPATIALPREFS_VAR_DIR": str(work / "var"), "MEDIA_ROOT": str(work / "media"),
                    "STORAGE_BACKEND": "local", "CELERY_BROKER_URL": "memory://",
                    "LOG_LEVEL": "WARNING", "REWARD_MODEL_NAME": models[kind][0],
                    "REWARD_MODEL_CACHE_DIR": str(cache),
                    "REWARD_SCORING_PRELOAD": "true" if mode == "on" else "false",
                }  # fmt: skip
                port = run.free_port()
                server = run.gunicorn_start(env, port, 4, work / f"first-{kind}-{mode}.log")
                try:
                    time.sleep(args.delay)
                    client = RewardClient(f"http://127.0.0.1:{port}", token)
                    latencies = []
                    for _ in range(2):
                        started = time.perf_counter()
                        client.score(images, prompts)
                        latencies.append(1000 * (time.perf_counter() - started))
                    times.setdefault((kind, mode), []).append(tuple(latencies))
                finally:
                    server.terminate()
                    server.wait(30)
    load_end = os.getloadavg()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{load_start:.1f} at start, {load_end:.1f} at end; {args.batch} images a request, "
          f"first request {args.delay:.0f} s after the port answered, median of "
          f"{args.rounds} rounds\n")  # fmt: skip
    print("| model | preload | first request ms | second request ms |")
    print("|---|---|---|---|")
    for kind in args.models:
        for mode in ("off", "on"):
            rows = times[(kind, mode)]
            first = statistics.median(r[0] for r in rows)
            second = statistics.median(r[1] for r in rows)
            print(f"| {kind} | {mode} | {first:.0f} | {second:.0f} |")


if __name__ == "__main__":
    main()
