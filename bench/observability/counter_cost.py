"""What one hot-path metric update costs: the judgments counter's inc() and the scoring
histogram's observe(), in one process and in prometheus_client's multiprocess mode.

    .venv/bin/python bench/observability/counter_cost.py            # one process
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/observability/counter_cost.py
"""

import os
import timeit

from prometheus_client import Counter, Histogram

N = 200_000
counter = Counter("bench_judgments", "bench")
histogram = Histogram("bench_seconds", "bench", buckets=(0.01, 0.1, 1, 10))
mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "one process"
for name, call in (
    ("Counter.inc()", counter.inc),
    ("Histogram.observe()", lambda: histogram.observe(0.05)),
):
    best = min(timeit.repeat(call, number=N, repeat=5)) / N
    print(f"{mode:13s} {name:20s} {best * 1e9:8.0f} ns")
