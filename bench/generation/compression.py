"""The encoder settings the worker stores images with, against their alternatives: CPU time and
size per image, for procedural scenes (flat colours: generation_workers/backends/procedural/
draw.py) and for photo-like images such as a diffusion model's (backends/encoding.py).

    taskset -c 0 .venv/bin/python bench/generation/compression.py --n 40 --size 512

One process, one core; CPU time is this process's (time.process_time), so other load on the
machine changes it little. The figures go to bench/generation/RESULTS.md.
"""

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "generation"))

from encoding import photo_like  # noqa: E402
from procedural_render import SPECS  # noqa: E402

from generation_workers.backends.procedural import render  # noqa: E402

# (label, PIL save arguments); the worker's own settings are marked "(used)"
PROCEDURAL = [
    ("png level 0", {"format": "PNG", "compress_level": 0}),
    ("png level 1", {"format": "PNG", "compress_level": 1}),
    ("png level 1 + Z_RLE (used)", {"format": "PNG", "compress_level": 1, "compress_type": 3}),
    ("png level 6", {"format": "PNG", "compress_level": 6}),
    ("webp lossless method 0", {"format": "WEBP", "lossless": True, "method": 0, "quality": 0}),
    ("webp lossless method 1 (used)", {"format": "WEBP", "lossless": True, "method": 1,
                                       "quality": 0}),
]  # fmt: skip
PHOTO_LIKE = [
    ("png level 1 (used)", {"format": "PNG", "compress_level": 1}),
    ("png level 6", {"format": "PNG", "compress_level": 6}),
    ("webp lossless method 0 (used)", {"format": "WEBP", "lossless": True, "method": 0}),
]


def measure(images, options: dict) -> tuple[float, float]:
    """(median CPU ms per image, mean KiB per image)."""
    cpu_ms, sizes = [], []
    for image in images:
        buffer = io.BytesIO()
        started = time.process_time()
        image.save(buffer, **options)
        cpu_ms.append((time.process_time() - started) * 1000)
        sizes.append(len(buffer.getvalue()) / 1024)
    return statistics.median(cpu_ms), statistics.fmean(sizes)


def table(title: str, images, settings) -> None:
    print(f"\n{title}")
    print("| setting | CPU ms/img (median) | KiB/img |\n|---|---|---|")
    for label, options in settings:
        measure(images[:2], options)  # warm up
        ms, kib = measure(images, options)
        print(f"| {label} | {ms:.1f} | {kib:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    scenes = [
        render(SPECS[i % len(SPECS)], seed=i, width=args.size, height=args.size).image
        for i in range(args.n)
    ]
    photos = [photo_like(args.size, seed) for seed in range(max(4, args.n // 4))]
    table(f"procedural scenes, {args.size}x{args.size}, {len(scenes)} images", scenes, PROCEDURAL)
    table(f"photo-like images, {args.size}x{args.size}, {len(photos)} images", photos, PHOTO_LIKE)


if __name__ == "__main__":
    main()
