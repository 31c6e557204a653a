"""Simulated annotators over HTTP against the app under gunicorn (after load.py).

    .venv/bin/python bench/labeling/run.py --annotators 8 --seconds 30
    .venv/bin/python bench/labeling/run.py --annotators 1 --user veteran --seconds 30

Starts gunicorn on the benchmark database (DEBUG off, persistent connections), then runs one
process per annotator. Each loops like the browser does: ask `next` (prefetch 3, passing the
pairs it holds as `known`) whenever it holds fewer than 3 pairs, answer the first one
(`submit`, 5% skips), repeat. After a warm-up
it measures judgments per second, p50/p95/p99 of next and of submit, the machine's total CPU
use (/proc/stat) and the CPU of gunicorn, of the PostgreSQL backends serving this database,
and of the simulated annotators. Prints a table; writes bench/out/labeling-<label>.json.
"""

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
CLK = os.sysconf("SC_CLK_TCK")
CHOICES = ["left", "right", "tie", "both_wrong"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return sum(parts) - idle, sum(parts)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def pg_backends(url: str, db: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db],
        ).fetchall()
    return [r[0] for r in rows]


class Http:
    """A tiny HTTP/1.1 client that reuses its connection when the server keeps it open."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        data = json.dumps(body)
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("POST", path, data, self.headers)
                response = self.conn.getresponse()
                payload = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, json.loads(payload) if payload else {}
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def annotator(args, token: str, queue: int, start_at: float, measure_at: float, end_at: float, out):
    rng = random.Random(token)
    client = Http(args.port, token)
    next_path = f"/api/labeling/queues/{queue}/next/"
    submit_path = f"/api/labeling/queues/{queue}/submit/"
    buffer: list[int] = []
    done: set[int] = set()
    lat_next: list[float] = []
    lat_submit: list[float] = []
    statuses: dict[str, int] = {}
    judgments = 0
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = time.process_time()
    while True:
        now = time.time()
        if now >= end_at:
            break
        measuring = now >= measure_at
        refill = {"always": args.prefetch - 1, "low": 1, "empty": 0}[args.refill]
        if len(buffer) <= refill:
            t = time.perf_counter()
            status, body = client.post(next_path, {"count": args.prefetch, "known": buffer})
            if measuring:
                lat_next.append(time.perf_counter() - t)
                statuses[f"next {status}"] = statuses.get(f"next {status}", 0) + 1
            still = set(body.get("known_held", []))
            buffer = [pair for pair in buffer if pair in still]
            for item in body.get("items", []):
                if item["pair"] not in buffer and item["pair"] not in done:
                    buffer.append(item["pair"])
        if not buffer:
            time.sleep(0.01)
            continue
        pair = buffer.pop(0)
        done.add(pair)
        choice = "skip" if rng.random() < 0.05 else rng.choice(CHOICES)
        body = {
            "pair": pair,
            "client_submission_id": str(uuid.uuid4()),
            "choice": choice,
            "duration_ms": rng.randint(800, 6000),
        }
        t = time.perf_counter()
        status, _ = client.post(submit_path, body)
        if measuring:
            lat_submit.append(time.perf_counter() - t)
            statuses[f"submit {status}"] = statuses.get(f"submit {status}", 0) + 1
            if status in (200, 201):
                judgments += 1
    out.put(
        {
            "next": lat_next,
            "submit": lat_submit,
            "judgments": judgments,
            "statuses": statuses,
            "cpu": time.process_time() - cpu0,
        }
    )


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--user", help="one annotator by name (e.g. veteran)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--prefetch", type=int, default=3)
    parser.add_argument(
        "--refill",
        choices=["always", "low", "empty"],
        default="always",
        help="ask next after every answer while holding fewer than prefetch (top-up), when "
        "one pair is left (the next one stays preloaded), or only when none is left",
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help=">1: gthread worker class")
    parser.add_argument("--label", default="run")
    parser.add_argument("--db", default="sp_bench_labeling", help="as given to load.py")
    parser.add_argument("--base", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    info = json.loads((OUT / f"tokens-{args.db}.json").read_text())
    db, queue, tokens = info["db"], info["queue"], info["tokens"]
    url = f"{args.base}/{db}"
    if args.user:
        chosen = [tokens[args.user]]
    else:
        chosen = [tokens[f"bench{i}"] for i in range(args.annotators)]
    args.port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_DEBUG": "0",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
    }
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
    ]
    if args.threads > 1:
        cmd += ["--worker-class", "gthread", "--threads", str(args.threads)]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", args.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)
        loadavg = os.getloadavg()
        start_at = time.time() + 1.0
        measure_at = start_at + args.warmup
        end_at = measure_at + args.seconds
        results: mp.Queue = mp.Queue()
        procs = [
            mp.Process(
                target=annotator, args=(args, t, queue, start_at, measure_at, end_at, results)
            )
            for t in chosen
        ]
        for p in procs:
            p.start()
        while time.time() < measure_at:
            time.sleep(0.01)
        server_pids = [server.pid, *children_of(server.pid)]
        backends = pg_backends(url, db)
        cpu_server0 = sum(proc_cpu_seconds(p) for p in server_pids)
        cpu_pg0 = {p: proc_cpu_seconds(p) for p in backends}
        busy0, total0 = machine_busy()
        time.sleep(max(0.0, end_at - time.time()))
        busy1, total1 = machine_busy()
        cpu_server1 = sum(proc_cpu_seconds(p) for p in server_pids)
        backends1 = pg_backends(url, db)
        cpu_pg = sum(proc_cpu_seconds(p) - cpu_pg0.get(p, 0.0) for p in backends1)
        collected = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    lat_next = [x for r in collected for x in r["next"]]
    lat_submit = [x for r in collected for x in r["submit"]]
    judgments = sum(r["judgments"] for r in collected)
    statuses: dict[str, int] = {}
    for r in collected:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    ncpu = os.cpu_count() or 1
    machine = (busy1 - busy0) / (total1 - total0) * 100 * ncpu
    report = {
        "label": args.label,
        "annotators": len(chosen),
        "user": args.user,
        "seconds": args.seconds,
        "workers": args.workers,
        "threads": args.threads,
        "refill": args.refill,
        "judgments": judgments,
        "judgments_per_s": judgments / args.seconds,
        "next_ms": {p: pct(lat_next, q) for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "submit_ms": {
            p: pct(lat_submit, q) for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "requests": {"next": len(lat_next), "submit": len(lat_submit)},
        "statuses": statuses,
        "cpu_percent": {
            "machine_total": machine,
            "gunicorn": (cpu_server1 - cpu_server0) / args.seconds * 100,
            "postgres_backends": cpu_pg / args.seconds * 100,
            "annotator_clients": sum(r["cpu"] for r in collected)
            / (args.seconds + args.warmup)
            * 100,
        },
        "cpus": ncpu,
        "loadavg_before": loadavg,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"labeling-{args.label}.json").write_text(json.dumps(report, indent=1))
    cpu = report["cpu_percent"]
    print(f"{args.label}: {len(chosen)} annotator(s), {args.seconds:.0f}s measured, "
          f"gunicorn {args.workers}x{args.threads}, refill={args.refill}, "
          f"load before {loadavg[0]:.2f}")  # fmt: skip
    print(f"  judgments/s       {report['judgments_per_s']:8.1f}   ({judgments} judgments)")
    for kind in ("next", "submit"):
        ms = report[f"{kind}_ms"]
        print(f"  {kind:<7} ms p50 {ms['p50']:6.2f}  p95 {ms['p95']:6.2f}  p99 {ms['p99']:6.2f}"
              f"   ({report['requests'][kind]} requests)")  # fmt: skip
    print(f"  CPU % (of {ncpu * 100}): machine {cpu['machine_total']:.0f}, gunicorn "
          f"{cpu['gunicorn']:.0f}, postgres {cpu['postgres_backends']:.0f}, clients "
          f"{cpu['annotator_clients']:.0f}")  # fmt: skip
    print(f"  statuses          {json.dumps(statuses, sort_keys=True)}")


if __name__ == "__main__":
    sys.exit(main())
