"""The whole labeling benchmark: both table sizes, every scenario, then the databases dropped.

    .venv/bin/python bench/labeling/all.py                 # 10,000 and 1,000,000 pairs
    .venv/bin/python bench/labeling/all.py --sizes 10000   # one size

For each size: load.py (COPY), then run.py for one annotator; eight annotators asking `next`
after every answer (top-up), when one pair is left, or when none is; and the `veteran` (5,000
open judgments of their own at the front of the queue). Before those, statements.py (the SQL
alone, PostgreSQL CPU per call) for a fresh annotator and the veteran. Below 100,000 pairs
each run but the lone annotator's starts on a new load (they would use the queue up). From
100,000 pairs on, last, the farm (farm.py: 600 annotators at human pace; the load then makes
600 annotators). Prints one table of all runs (also in bench/out/labeling-*.json) and the
machine's load.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
PY = str(ROOT / ".venv" / "bin" / "python")

# The veteran first, then one annotator on the same database: at 10,000 pairs they use up
# its fresh pairs, so the lone annotator's `next` also runs the case where her own judged
# pairs fill the front of the serving order. Eight annotators use up a small queue in a run
# (3 judgments per pair), so below RELOAD_BELOW pairs each of their runs gets a new load, and
# so does the veteran's (statements.py has used a thousand of the queue's fresh pairs).
SCENARIOS = [
    ("veteran", ["--user", "veteran"]),
    ("1", ["--annotators", "1"]),
    ("8-topup", ["--annotators", "8", "--refill", "always"]),
    ("8-low", ["--annotators", "8", "--refill", "low"]),
    ("8-batch", ["--annotators", "8", "--refill", "empty"]),
]
RELOAD_BELOW = 100_000
FARM_ANNOTATORS = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--db-prefix", default="sp_bench_labeling")
    parser.add_argument(
        "--only", nargs="+", help="scenarios to run (veteran, 1, 8-topup, 8-low, 8-batch, farm)"
    )
    parser.add_argument("--no-statements", dest="statements", action="store_false")
    parser.add_argument("--farm-annotators", type=int, default=FARM_ANNOTATORS)
    parser.add_argument(
        "--quality",
        default="",
        help="load.py's quality switches for every load, e.g. \"--gold-rate 0.1 --gold-pairs "
        '1000 --overlap 2 --overlap-max 5 --adaptive-margin 2"',
    )
    args = parser.parse_args()
    labels = []
    for size in args.sizes:
        db = f"{args.db_prefix}_{size}"
        farm = size >= RELOAD_BELOW and (not args.only or "farm" in args.only)
        load = [PY, "bench/labeling/load.py", "--pairs", str(size), "--db", db]
        load += args.quality.split()
        if farm:
            load += ["--annotators", str(args.farm_annotators)]
        subprocess.run(load, cwd=ROOT, check=True)
        try:
            for user in ("bench7", "veteran") if args.statements else ():
                subprocess.run(
                    [PY, "bench/labeling/statements.py", "--db", db, "--user", user],
                    cwd=ROOT,
                    check=True,
                )
            for name, extra in SCENARIOS:
                if args.only and name not in args.only:
                    continue
                label = f"{size}-{name}"
                if size < RELOAD_BELOW and name != "1":
                    subprocess.run(load, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                subprocess.run(
                    [
                        PY,
                        "bench/labeling/run.py",
                        "--db",
                        db,
                        "--label",
                        label,
                        "--seconds",
                        str(args.seconds),
                        "--workers",
                        str(args.workers),
                        "--threads",
                        str(args.threads),
                        *extra,
                    ],  # fmt: skip
                    cwd=ROOT,
                    check=True,
                )
                labels.append(label)
            if farm:
                label = f"{size}-farm"
                farm_cmd = [PY, "bench/labeling/farm.py", "--db", db, "--label", label]
                farm_cmd += ["--annotators", str(args.farm_annotators)]
                subprocess.run(farm_cmd, cwd=ROOT, check=True)
                labels.append(label)
        finally:
            if not args.keep:
                subprocess.run([PY, "bench/labeling/load.py", "--drop", "--db", db], cwd=ROOT)
    print()
    print(f"{'run':<18}{'j/s':>7}{'next p50/p95/p99 ms':>24}{'submit p50/p95/p99 ms':>26}"
          f"{'CPU% machine/app/pg/clients':>30}{'load':>6}")  # fmt: skip
    for label in labels:
        r = json.loads((OUT / f"labeling-{label}.json").read_text())
        n, s, c = r["next_ms"], r["submit_ms"], r["cpu_percent"]
        print(
            f"{label:<18}{r['judgments_per_s']:>7.0f}"
            f"{n['p50']:>10.1f}/{n['p95']:.1f}/{n['p99']:.1f}"
            f"{s['p50']:>12.1f}/{s['p95']:.1f}/{s['p99']:.1f}"
            f"{c['machine_total']:>14.0f}/{c['gunicorn']:.0f}/{c['postgres_backends']:.0f}"
            f"/{c['annotator_clients']:.0f}{r['loadavg_before'][0]:>10.1f}"
        )
    print(f"cpus: {os.cpu_count()}; load now: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
