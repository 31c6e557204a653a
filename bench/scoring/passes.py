"""What a forward pass costs per image, by pass size, in one thread (no server).

    .venv/bin/python bench/scoring/passes.py                # both models, 32 to 256 images

For each model (the same random-weight checkpoints as run.py) and pass size: CPU ms of
`LoadedModel.forward` on images already prepared, and of `LoadedModel.prepare_all` (decoding
and resizing the opened uploads) per image, the mean of --calls calls after one warm-up, in a
thread of its own (as the server's batching thread). Shows which part of a pass larger
batches make cheaper per image.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["clip", "builtin"], choices=run.MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128, 256])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--db", default="sp_bench_scoring")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    work = run.in_process_setup(args.pg, args.db, 1)
    import torch

    from training_bridge.reward_models.scoring.payloads import image_open, score_limits
    from training_bridge.reward_models.selectors.reward_models import reward_model_ref
    from training_bridge.reward_models.services.scoring import scoring_engine

    torch.set_num_threads(1)
    models = run.models_register(work, str(int(time.time())), args.models)
    prompts, images = run.images_make(max(args.sizes), 64)
    limits = score_limits()

    def measure() -> None:
        print("| model | images per pass | forward ms | forward ms/img | prepare ms/img |")
        print("|---|---|---|---|---|")
        for kind in args.models:
            loaded = scoring_engine().model(reward_model_ref(name=models[kind][0]))
            for n in args.sizes:

                def opened(n=n) -> list:
                    return [image_open(data, limits, field="image") for data in images[:n]]

                prepared = loaded.prepare_all(opened())
                loaded.forward(prompts[:n], prepared, batch_size=n)
                started = time.thread_time()
                for _ in range(args.calls):
                    loaded.forward(prompts[:n], prepared, batch_size=n)
                forward = (time.thread_time() - started) / args.calls
                started = time.thread_time()
                for _ in range(args.calls):
                    loaded.prepare_all(opened())
                prepare = (time.thread_time() - started) / args.calls
                print(f"| {kind} | {n} | {1000 * forward:.2f} | {1000 * forward / n:.3f} | "
                      f"{1000 * prepare / n:.3f} |")  # fmt: skip

    thread = threading.Thread(target=measure, name="passes")
    thread.start()
    thread.join()


if __name__ == "__main__":
    main()
