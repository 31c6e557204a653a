"""Encoding cost per image at real model sizes (PNG level 1 and lossless WebP, as the worker
stores them), on a photo-like image: smooth noise with fine grain, which compresses about like
a diffusion model's output (neither flat like a procedural scene nor incompressible noise).

    .venv/bin/python bench/generation/encoding.py --sizes 512 1024 --n 20
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from generation_workers.backends.encoding import image_encode  # noqa: E402


def photo_like(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    image = image.filter(ImageFilter.GaussianBlur(2))
    grain = rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    print(f"{'size':>6} {'format':>6} {'ms/img median':>13} {'CPU ms/img':>10} {'KiB/img':>8}")
    for size in args.sizes:
        images = [photo_like(size, seed) for seed in range(4)]
        for fmt in ("png", "webp"):
            walls, cpus, sizes = [], [], []
            for i in range(args.n):
                wall, cpu = time.perf_counter(), time.process_time()
                data = image_encode(images[i % 4], fmt=fmt)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                sizes.append(len(data))
            print(
                f"{size:>6} {fmt:>6} {1000 * statistics.median(walls):>13.1f} "
                f"{1000 * statistics.median(cpus):>10.1f} {statistics.mean(sizes) / 1024:>8.0f}"
            )


if __name__ == "__main__":
    main()
