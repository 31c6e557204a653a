"""The labeling benchmark on two checkouts, scenario by scenario, back to back.

    git worktree add /tmp/before <commit before>; ln -s $PWD/.venv /tmp/before/.venv
    cp bench/labeling/{farm,run,all}.py /tmp/before/bench/labeling/   # the same load generator
    .venv/bin/python bench/labeling/side_by_side.py --tree before=/tmp/before --tree after=.

On a shared machine a whole run of all.py on one checkout, then on the other, compares two
different neighbourhoods; here each scenario runs on every checkout in turn before the next
scenario starts, so the two figures of a row were taken minutes apart. Each checkout gets its
own databases (<prefix>_<name>_<size>, loaded by its own load.py and migrations) and its own
gunicorn. Scenarios as in all.py: veteran, 1 (a lone annotator after the veteran's run, on the
same database), 8-topup, 8-low, 8-batch (a fresh load each below 100,000 pairs), farm (600
annotators at human pace, 1,000,000 pairs); and veteran-started (the veteran on a load with no
fresh pairs, `load.py --started`: his 5,000 judged pairs fill the front of the serving order,
so every `next` has to look past them). `--quiet-below L` waits (up to --quiet-wait
seconds) before each scenario until the 1-minute load average is under L. Prints one table, with
the load average before each run; the runs' reports are in each checkout's bench/out/.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCENARIOS = {
    "veteran": ["run.py", "--user", "veteran"],
    "1": ["run.py", "--annotators", "1"],
    "8-topup": ["run.py", "--annotators", "8", "--refill", "always"],
    "8-low": ["run.py", "--annotators", "8", "--refill", "low"],
    "8-batch": ["run.py", "--annotators", "8", "--refill", "empty"],
    "farm": ["farm.py", "--annotators", "600"],
    "veteran-started": ["run.py", "--user", "veteran"],
}
# Scenarios on a database of their own, loaded with these options of load.py.
OWN_LOAD = {"veteran-started": ["--started"]}
RELOAD_BELOW = 100_000  # as all.py: small queues are used up by a run
FARM_ANNOTATORS = 600


def wait_quiet(below: float | None, patience: float) -> float:
    deadline = time.monotonic() + patience
    while below is not None and os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(10)
    return os.getloadavg()[0]


def env_of(settings: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    return env


def load(root: Path, db: str, *, size: int, annotators: int, options: list[str], env) -> None:
    cmd = [str(root / ".venv/bin/python"), "bench/labeling/load.py", "--pairs", str(size)]
    cmd += ["--db", db, "--annotators", str(annotators), *options]
    subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree",
        action="append",
        required=True,
        help="NAME=PATH[@SETTINGS_MODULE], in order (a settings module of that checkout, e.g. "
        "one that switches an engine on, for its web processes and its load)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--prefix", default="sp_bench_labeling")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--farm-seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--quiet-below", type=float)
    parser.add_argument("--quiet-wait", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--out", default="bench/out/labeling-side-by-side.json")
    args = parser.parse_args()
    trees, envs = [], {}
    for spec in args.tree:
        name, _, rest = spec.partition("=")
        path, _, settings = rest.partition("@")
        trees.append((name, Path(path).resolve()))
        envs[name] = env_of(settings or None)
    rows = []
    for size in args.sizes:
        farm = size >= RELOAD_BELOW and "farm" in args.scenarios
        loaded: set[str] = set()
        try:
            for scenario in args.scenarios:
                if scenario == "farm" and size < RELOAD_BELOW:
                    continue
                script, *extra = SCENARIOS[scenario]
                fresh = size < RELOAD_BELOW and scenario != "1"
                row = {"size": size, "scenario": scenario}
                options = OWN_LOAD.get(scenario, [])
                suffix = "_own" if options else ""
                for name, root in trees:
                    db = f"{args.prefix}_{name}_{size}{suffix}"
                    if fresh or options or db not in loaded:
                        annotators = FARM_ANNOTATORS if farm else 8
                        load(
                            root,
                            db,
                            size=size,
                            annotators=annotators,
                            options=options,
                            env=envs[name],
                        )
                        loaded.add(db)
                # one wait per scenario, so that its runs on the checkouts follow each other
                load_before = wait_quiet(args.quiet_below, args.quiet_wait)
                for name, root in trees:
                    db = f"{args.prefix}_{name}_{size}{suffix}"
                    label = f"sbs-{name}-{size}-{scenario}"
                    seconds = args.farm_seconds if scenario == "farm" else args.seconds
                    cmd = [str(root / ".venv/bin/python"), f"bench/labeling/{script}", *extra]
                    cmd += ["--db", db, "--label", label, "--seconds", str(seconds)]
                    if scenario != "farm":
                        cmd += ["--workers", str(args.workers), "--threads", str(args.threads)]
                    subprocess.run(cmd, cwd=root, check=True, env=envs[name])
                    report = json.loads((root / f"bench/out/labeling-{label}.json").read_text())
                    report["load_before_wait"] = load_before
                    row[name] = report
                rows.append(row)
        finally:
            if not args.keep:
                for db, root in [
                    (f"{args.prefix}_{name}_{size}{suffix}", root)
                    for name, root in trees
                    for suffix in ("", "_own")
                ]:
                    subprocess.run(
                        [str(root / ".venv/bin/python"), "bench/labeling/load.py", "--drop"]
                        + ["--db", db],
                        cwd=root,
                        stdout=subprocess.DEVNULL,
                    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print()
    print("| size | scenario | checkout | j/s | next p50/p95/p99 ms | submit p50/p95/p99 ms "
          "| CPU % machine/app/pg/clients | short next | load |")  # fmt: skip
    print("|---|---|---|---:|---|---|---|---:|---:|")
    for row in rows:
        for name, _ in trees:
            r = row[name]
            n, s, c = r["next_ms"], r["submit_ms"], r["cpu_percent"]
            short = r.get("short_next", "")
            print(
                f"| {row['size']:,} | {row['scenario']} | {name} | {r['judgments_per_s']:.0f} "
                f"| {n['p50']:.1f} / {n['p95']:.1f} / {n['p99']:.1f} "
                f"| {s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f} "
                f"| {c['machine_total']:.0f} / {c['gunicorn']:.0f} / {c['postgres_backends']:.0f}"
                f" / {c['annotator_clients']:.0f} | {short} | {r['loadavg_before'][0]:.1f} |"
            )
    print(f"cpus: {os.cpu_count()}; load now: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
