"""The hot path's SQL alone: wall time and PostgreSQL CPU of `next` and `submit` per call.

    .venv/bin/python bench/labeling/statements.py --db sp_bench_labeling_1000000 --user veteran

Runs the two prepared statements of the loop (as the API runs them, without HTTP or Django's
request handling) for one annotator, --calls times each, and reads the serving backend's CPU
time from /proc, so the figures say what one call costs the database whatever else the
machine is doing. Compare users (a fresh annotator, the veteran) and table sizes.
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", default="bench7")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--base", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = f"{args.base}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from psycopg.types.json import Jsonb

    from annotation.models import LabelingQueue
    from annotation.services import statements as sql
    from annotation.services.assignment import OPEN_WINDOW
    from config import db

    user = get_user_model().objects.get(username=args.user)
    queue = LabelingQueue.objects.get(name="bench").pk
    next_sql = sql.next_sql(count=3, window=OPEN_WINDOW)
    pid = db.statement_run("SELECT pg_backend_pid()", {})[0][0]
    wall = {"next": [], "submit": []}
    cpu = {"next": 0.0, "submit": 0.0}
    known: list[int] = []
    for _ in range(args.calls):
        c0, t0 = backend_cpu(pid), time.perf_counter()
        rows = db.statement_run(
            next_sql, {"queue": queue, "user": user.pk, "known": known}, durable=False
        )
        t1, c1 = time.perf_counter(), backend_cpu(pid)
        held = [r[7] for r in rows if r[7] is not None] + list(rows[0][2] or [])
        if not held:
            raise SystemExit(f"nothing left in the queue for {args.user}")
        pair = held[0]
        db.statement_run(
            sql.SUBMIT_SQL,
            {
                "queue": queue,
                "user": user.pk,
                "pair": pair,
                "sid": uuid.uuid4(),
                "choice": "left",
                "tags": Jsonb([]),
                "criteria": Jsonb({}),
                "duration": 1500,
            },
        )
        t2, c2 = time.perf_counter(), backend_cpu(pid)
        known = [p for p in held if p != pair]
        wall["next"].append(t1 - t0)
        wall["submit"].append(t2 - t1)
        cpu["next"] += c1 - c0
        cpu["submit"] += c2 - c1
    print(f"{args.db} user={args.user} calls={args.calls} load={os.getloadavg()[0]:.2f}")
    for kind in ("next", "submit"):
        print(
            f"  {kind:<7} wall p50 {pct(wall[kind], 0.5):6.2f} p99 {pct(wall[kind], 0.99):6.2f} ms"
            f"   postgres CPU {cpu[kind] / args.calls * 1000:5.2f} ms/call"
        )


if __name__ == "__main__":
    sys.exit(main())
