"""Images per second of the scoring engine's forward passes by torch thread count: torch's own
default (REWARD_SCORING_THREADS unset before issue 17: a thread per core) against 1 (the
default since) and any other counts given.

    .venv/bin/python bench/scoring/threads.py                      # default vs 1, 4 models
    .venv/bin/python bench/scoring/threads.py --threads 1 2 --rounds 5 --batch 64

Each measurement is a fresh process (OpenMP's state is per process): it loads the checkpoint
with the trainer's `reward_model_load` and, in a thread of its own that sets the count first
(as the engine's batching thread does), scores --calls batches of --batch procedural PNGs after
one warm-up batch: images per second (wall) and CPU ms per image. Configurations take turns
within each round, so the machine's load drifts over all of them; the table shows the median
over the rounds. No database, no server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def checkpoints_make(work: Path, kinds: list[str]) -> dict[str, Path]:
    from tests.reward.checkpoints import builtin_checkpoint, clip_checkpoint, tiny_clip_folder

    builders = {
        "builtin": lambda: builtin_checkpoint(work / "builtin", seed=0, size=64),
        "clip": lambda: clip_checkpoint(
            work / "clip-rm", clip_folder=tiny_clip_folder(work / "tiny-clip"), seed=0
        ),
        "builtin-128": lambda: builtin_checkpoint(work / "builtin-128", seed=0, size=128),
        "clip-wide": lambda: clip_checkpoint(
            work / "clip-wide-rm",
            clip_folder=tiny_clip_folder(work / "clip-wide", image_size=64, hidden=256, layers=4),
            seed=0,
        ),
    }
    return {kind: builders[kind]() for kind in kinds}


def measure(folder: str, threads: int, batch: int, calls: int) -> dict:
    """In this (fresh) process: score `calls` batches in a thread that sets `threads` (0: torch's
    own default)."""
    import run
    import torch

    from training_bridge.training.trainer.checkpoint import reward_model_load

    scorer = reward_model_load(Path(folder))
    prompts, images = run.images_make(batch, 64)
    out: dict = {}

    def work() -> None:
        if threads:
            torch.set_num_threads(threads)
        out["torch_threads"] = torch.get_num_threads()
        scorer.score(prompts, images, batch_size=batch)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            scorer.score(prompts, images, batch_size=batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out["images_per_s"] = calls * batch / wall
        out["cpu_ms_per_image"] = 1000 * cpu / (calls * batch)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["builtin", "clip", "builtin-128",
                                                        "clip-wide"])  # fmt: skip
    parser.add_argument("--threads", nargs="+", type=int, default=[0, 1],
                        help="0 is torch's own default")  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, threads, batch, calls = args.child
        print(json.dumps(measure(folder, int(threads), int(batch), int(calls))))
        return
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load_start = os.getloadavg()[0]
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        folders = checkpoints_make(Path(tmp), args.models)
        for _ in range(args.rounds):
            for kind in args.models:
                for threads in args.threads:
                    child = subprocess.run(
                        [sys.executable, __file__, "--child", str(folders[kind]), str(threads),
                         str(args.batch), str(args.calls)],
                        capture_output=True, text=True, env=env, check=True,
                    )  # fmt: skip
                    line = child.stdout.strip().splitlines()[-1]
                    results.setdefault((kind, threads), []).append(json.loads(line))
    load_end = os.getloadavg()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load "
          f"average {load_start:.1f} at start, {load_end:.1f} at end; batch {args.batch}, "
          f"{args.calls} calls, median of {args.rounds} rounds\n")  # fmt: skip
    print("| model | threads | torch threads | images/s | CPU ms/img | images/s vs 1 thread |")
    print("|---|---|---|---|---|---|")
    for kind in args.models:
        one = results.get((kind, 1))
        base = statistics.median(r["images_per_s"] for r in one) if one else None
        for threads in args.threads:
            rows = results[(kind, threads)]
            ips = statistics.median(r["images_per_s"] for r in rows)
            cpu = statistics.median(r["cpu_ms_per_image"] for r in rows)
            label = "default (unset)" if threads == 0 else str(threads)
            ratio = f"{ips / base:.2f}x" if base else "-"
            print(f"| {kind} | {label} | {rows[0]['torch_threads']} | {ips:.0f} | {cpu:.3f} | "
                  f"{ratio} |")  # fmt: skip


if __name__ == "__main__":
    main()
