"""Images per second of the procedural renderer on one core: render alone, and with encoding.

    .venv/bin/python bench/procedural_render.py --n 500 --size 512 --format all

Cycles over a fixed set of prompt specs (2 to 6 objects, 1 to 5 relations, counts, scenes),
one seed per image. Pin it to one core with `taskset -c 0` for a per-core figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation_workers.backends.procedural import image_encode, render  # noqa: E402


def _object(object_id: str, name: str, count: int = 1, **attributes: str) -> dict:
    return {"id": object_id, "name": name, "count": count, "attributes": attributes}


def _relation(subject: str, relation: str, *objects: str) -> dict:
    return {"subject": subject, "relation": relation, "objects": list(objects)}


SPECS: list[dict] = [
    {
        "objects": [_object("o1", "cat", color="red"), _object("o2", "tv")],
        "relations": [_relation("o1", "left_of", "o2")],
        "scene": None,
    },
    {
        "objects": [_object("o1", "computer mouse", size="small"), _object("o2", "laptop")],
        "relations": [_relation("o1", "below", "o2")],
        "scene": "office",
    },
    {
        "objects": [
            _object("o1", "cup", color="white", size="small"),
            _object("o2", "table", size="large"),
            _object("o3", "chair", 2, color="brown"),
        ],
        "relations": [_relation("o1", "on_top_of", "o2"), _relation("o3", "right_of", "o2")],
        "scene": "kitchen",
    },
    {
        "objects": [
            _object("o1", "dog", color="brown"),
            _object("o2", "sofa", size="large", color="blue"),
            _object("o3", "lamp"),
            _object("o4", "book", 3, size="small"),
        ],
        "relations": [
            _relation("o1", "in_front_of", "o2"),
            _relation("o3", "left_of", "o2"),
            _relation("o4", "centered_on", "o2"),
        ],
        "scene": "living room",
    },
    {
        "objects": [
            _object("o1", "vase", color="purple"),
            _object("o2", "clock"),
            _object("o3", "plant", color="green"),
            _object("o4", "box", size="large"),
            _object("o5", "ball", size="small", color="orange"),
        ],
        "relations": [
            _relation("o1", "between", "o2", "o3"),
            _relation("o5", "inside", "o4"),
            _relation("o4", "below", "o1"),
            _relation("o2", "near", "o1"),
            _relation("o3", "aligned_with_edge_of", "o4"),
        ],
        "scene": "classroom",
    },
    {
        "objects": [
            _object("o1", "bicycle", color="yellow"),
            _object("o2", "car", size="large", color="gray"),
            _object("o3", "person", 2),
            _object("o4", "traffic light", size="small"),
            _object("o5", "bench"),
            _object("o6", "dog", size="small", color="black"),
        ],
        "relations": [
            _relation("o1", "against", "o2"),
            _relation("o3", "behind", "o2"),
            _relation("o4", "above", "o2"),
            _relation("o5", "next_to", "o1"),
            _relation("o6", "under", "o5"),
        ],
        "scene": "street",
    },
]


def _measure(fmt: str, *, n: int, size: int) -> tuple[float, float, float]:
    """(images per wall-clock second, per CPU second of this process, mean encoded bytes).

    The CPU-time rate is the per-core figure on a shared machine, where waiting for a core
    would count against the wall-clock rate."""
    encoded_bytes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        image = render(SPECS[i % len(SPECS)], seed=i, width=size, height=size).image
        if fmt != "none":
            encoded_bytes += len(image_encode(image, fmt=fmt))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / cpu, encoded_bytes / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="images per measurement")
    parser.add_argument("--size", type=int, default=512, help="width and height in pixels")
    parser.add_argument(
        "--format",
        choices=("none", "png", "webp", "all"),
        default="all",
        help="none: render alone; png/webp: render then encode; all: the three in turn",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="measurements per format; medians shown"
    )
    args = parser.parse_args()
    formats = ["none", "png", "webp"] if args.format == "all" else [args.format]
    for spec in SPECS:  # warm the caches (fonts, backgrounds, labels, shape outlines)
        render(spec, seed=0, width=args.size, height=args.size)
    for fmt in formats:
        runs = [_measure(fmt, n=args.n, size=args.size) for _ in range(args.repeat)]
        wall = statistics.median(rate for rate, _, _ in runs)
        cpu = statistics.median(rate for _, rate, _ in runs)
        label = "render" if fmt == "none" else f"render+{fmt}"
        line = (
            f"{label:12s} {wall:8.1f} images/s wall, {cpu:8.1f} per CPU second "
            f"({1000 / cpu:.2f} CPU ms/image, {args.size}x{args.size}"
        )
        if fmt != "none":
            line += f", {runs[0][2] / 1024:.1f} KiB/image"
        print(line + ")")


if __name__ == "__main__":
    main()
