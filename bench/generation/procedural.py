"""Procedural images per second on one core, through the worker's backend: render, the layout
check recorded with every image, and PNG/WebP encoding (storage and the database excluded).

    taskset -c 0 .venv/bin/python bench/generation/procedural.py --n 300 --size 512

Reuses the prompt specs of bench/procedural_render.py (2 to 6 objects, 1 to 5 relations),
one seed per image; the renderer alone is bench/procedural_render.py.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from procedural_render import SPECS  # noqa: E402

from generation_workers.backends.base import BackendConfig, RenderItem  # noqa: E402
from generation_workers.backends.encoding import image_encode  # noqa: E402
from generation_workers.backends.scenes import ProceduralBackend  # noqa: E402


def measure(backend: ProceduralBackend, *, n: int, fmt: str | None) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        item = RenderItem(candidate_id=i, text="", structure=SPECS[i % len(SPECS)], seed=i)
        rendered = backend.render([item])[0]
        if rendered.image is None:
            raise SystemExit(rendered.error)
        if fmt:
            image_encode(rendered.image, fmt=fmt)
    return n / (time.perf_counter() - started), n / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    backend = ProceduralBackend(
        BackendConfig(config_id=0, backend="procedural", width=args.size, height=args.size)
    )
    measure(backend, n=len(SPECS), fmt="png")  # warm caches
    print(f"procedural backend, {args.size}x{args.size}, {args.n} images, best/median of "
          f"{args.repeat}")  # fmt: skip
    print(f"{'path':<20} {'median img/s':>12} {'best img/s':>10} {'ms/img':>7} "
          f"{'img per CPU s':>13}")  # fmt: skip
    for label, fmt in (("render+check", None), ("render+check+png", "png"),
                       ("render+check+webp", "webp")):  # fmt: skip
        runs = [measure(backend, n=args.n, fmt=fmt) for _ in range(args.repeat)]
        rates = sorted(wall for wall, _ in runs)
        median = statistics.median(rates)
        per_cpu = statistics.median(cpu for _, cpu in runs)
        print(
            f"{label:<20} {median:>12.1f} {rates[-1]:>10.1f} {1000 / median:>7.2f} {per_cpu:>13.1f}"
        )


if __name__ == "__main__":
    main()
