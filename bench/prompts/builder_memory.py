"""Peak memory of the spatial engine's set builder alone (no database): the records stream,
and what the builder holds is one small digest per prompt for deduplication.

    .venv/bin/python bench/prompts/builder_memory.py --size 1000000 --variant single

Variants as bench/prompts/bench_prompts.py. Prints the peak RSS of the process before and
after consuming the stream (Linux ru_maxrss) and the CPU time; figures go to bench/RESULTS.md.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "prompts"))

from bench_prompts import VARIANTS  # noqa: E402

from generation_workers.spatial import build_prompt_set  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="single")
    args = parser.parse_args()
    spec = {"size": args.size, "seed": 1, **VARIANTS[args.variant]}
    before = peak_mb()
    started = time.process_time()
    count = sum(1 for _ in build_prompt_set(spec))
    print(f"{args.variant}: {count} prompts, {time.process_time() - started:.1f} CPU s, "
          f"peak RSS {before:.0f} MB before -> {peak_mb():.0f} MB after")  # fmt: skip


if __name__ == "__main__":
    main()
