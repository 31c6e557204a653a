"""A labeling farm at human pace: hundreds of annotators, each answering every few seconds.

    .venv/bin/python bench/labeling/load.py --pairs 1000000 --annotators 600 --db sp_bench_farm
    .venv/bin/python bench/labeling/farm.py --db sp_bench_farm --annotators 600

Starts gunicorn on the benchmark database (as run.py does), then simulates the annotators in
ONE process: asyncio, one HTTP/1.1 keep-alive connection per annotator, requests written and
parsed by hand (a thread or a process per annotator would cost this machine more than the
server). Each annotator behaves like the labeling page (frontend/static/frontend/label/
main.js): on arrival it asks `progress` and `next` (count = the prefetch, no `known`); it looks
at each pair for an exponentially distributed time (mean --think seconds) and answers
(`submit`, 5% skips), the next pair being on screen already; it asks `next` again when fewer
than two pairs are left on screen; it sends a `heartbeat` for the pairs on screen every third
of the lease and asks `progress` every minute. Arrivals are spread over --ramp seconds; after
--warmup seconds it measures for --seconds: judgments stored per second (of those offered:
annotators x seconds / think), p50/p95/p99 of each request kind, the answers that were not
200/201, and every `next` that came back short ("nothing (more) left for you" while the
queue has a million open pairs) or left an annotator with nothing on screen. Images are not
fetched (the bench's candidates have no files). Prints a table; writes
bench/out/labeling-<label>.json. Quality control (gold rate, adaptive overlap) is the loaded
queue's (load.py's switches); the report repeats the settings and what they did.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from run import (  # noqa: E402 - the helpers run.py measures with
    OUT,
    ROOT,
    children_of,
    free_port,
    machine_busy,
    pct,
    pg_backends,
    proc_cpu_seconds,
)

CHOICES = ["left", "right", "tie", "both_wrong"]
REFILL_BELOW = 2  # the page asks for more when fewer than two pairs are on screen
PROGRESS_EVERY = 60.0
EMPTY_RECHECK = 20.0  # the page's wait before asking again after "nothing left"


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects (and resends once) when the server
    closed it between requests."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = (
            f"Host: 127.0.0.1\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body).encode() if body is not None else b""
        message = (
            f"{method} {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        for attempt in range(2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                self.writer.write(message)
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed by the server")
                status = int(status_line.split()[1])
                length, close = 0, False
                while True:
                    line = await self.reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                data = await self.reader.readexactly(length) if length else b""
                if close:
                    self.close()
                return status, json.loads(data) if data else {}
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                self.close()
                if attempt or fresh:
                    raise
        raise RuntimeError("unreachable")


class Stats:
    def __init__(self, measure_at: float, end_at: float) -> None:
        self.measure_at = measure_at
        self.end_at = end_at
        self.latency: dict[str, list[float]] = {}
        self.statuses: dict[str, int] = {}
        self.judgments = 0
        self.short_next = 0  # fewer items than asked for: "nothing (more) for you"
        self.left_empty = 0  # a `next` after which the annotator had nothing on screen
        self.errors: list[str] = []

    def measuring(self, t: float) -> bool:
        return self.measure_at <= t < self.end_at

    def note(self, kind: str, started: float, status: int) -> None:
        if not self.measuring(started):
            return
        self.latency.setdefault(kind, []).append(time.monotonic() - started)
        key = f"{kind} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1


async def annotator(args, index: int, token: str, stats: Stats, start_at: float) -> None:
    rng = random.Random(f"{args.seed}:{index}")
    conn = Connection(args.port, token)
    base = f"/api/labeling/queues/{args.queue}"
    on_screen: list[int] = []
    answered: set[int] = set()

    async def call(kind: str, method: str, path: str, body: dict | None = None):
        started = time.monotonic()
        try:
            status, data = await conn.request(method, path, body)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            if stats.measuring(started):
                stats.errors.append(f"{kind}: {exc!r}")
            return 0, {}
        stats.note(kind, started, status)
        return status, data

    async def refill() -> None:
        started = time.monotonic()
        status, data = await call("next", "POST", f"{base}/next/", {"count": args.prefetch})
        if status != 200:
            return
        items = data.get("items", [])
        for item in items:
            if item["pair"] not in on_screen and item["pair"] not in answered:
                on_screen.append(item["pair"])
        if stats.measuring(started):
            if len(items) < args.prefetch:
                stats.short_next += 1
            if not on_screen:
                stats.left_empty += 1

    await asyncio.sleep(max(0.0, start_at + rng.random() * args.ramp - time.monotonic()))
    now = time.monotonic()
    lease_beat = args.lease_seconds / 3
    heartbeat_at = now + rng.random() * lease_beat
    progress_at = now + PROGRESS_EVERY
    if args.progress:
        await call("progress", "GET", f"{base}/progress/")
    await refill()
    answer_at = time.monotonic() + rng.expovariate(1 / args.think)
    while True:
        now = time.monotonic()
        if now >= stats.end_at:
            break
        due = min(answer_at, heartbeat_at if args.heartbeat else 1e18, progress_at)
        if due > now:
            await asyncio.sleep(min(due, stats.end_at) - now)
            continue
        if args.heartbeat and heartbeat_at <= now:
            heartbeat_at += lease_beat
            if on_screen:
                await call("heartbeat", "POST", f"{base}/heartbeat/", {"pairs": on_screen[:50]})
            continue
        if progress_at <= now:
            progress_at += PROGRESS_EVERY
            if args.progress:
                await call("progress", "GET", f"{base}/progress/")
            continue
        if not on_screen:  # nothing to answer: the page asks again later
            await refill()
            answer_at = time.monotonic() + (
                rng.expovariate(1 / args.think) if on_screen else EMPTY_RECHECK
            )
            continue
        pair = on_screen.pop(0)
        answered.add(pair)
        body = {
            "pair": pair,
            "client_submission_id": str(uuid.uuid4()),
            "choice": "skip" if rng.random() < 0.05 else rng.choice(CHOICES),
            "duration_ms": rng.randint(800, 6000),
        }
        started = time.monotonic()
        status, _ = await call("submit", "POST", f"{base}/submit/", body)
        if status == 201 and stats.measuring(started):
            stats.judgments += 1
        if len(on_screen) < REFILL_BELOW:
            await refill()
        # the next pair went on screen when this one was answered
        answer_at += rng.expovariate(1 / args.think)
    conn.close()


async def simulate(args, tokens: list[str], start_at: float, stats: Stats) -> float:
    cpu0 = time.process_time()
    await asyncio.gather(*(annotator(args, i, t, stats, start_at) for i, t in enumerate(tokens)))
    return time.process_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=600)
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds per pair")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--ramp", type=float, default=10, help="arrivals spread over this")
    parser.add_argument("--prefetch", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=600)
    parser.add_argument("--no-heartbeat", dest="heartbeat", action="store_false")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keep-alive", type=int, default=30, help="gunicorn's, in seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="farm")
    parser.add_argument("--db", default="sp_bench_labeling", help="as given to load.py")
    parser.add_argument("--base", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    info = json.loads((OUT / f"tokens-{args.db}.json").read_text())
    db, args.queue, all_tokens = info["db"], info["queue"], info["tokens"]
    tokens = [all_tokens[f"bench{i}"] for i in range(args.annotators)]
    url = f"{args.base}/{db}"
    args.port = free_port()
    quality0 = queue_quality(url, args.queue)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_DEBUG": "0",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
    }
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi",
        "--bind", f"127.0.0.1:{args.port}",
        "--workers", str(args.workers),
        "--worker-class", "gthread", "--threads", str(args.threads),
        "--worker-connections", str(max(1000, args.annotators)),
        "--keep-alive", str(args.keep_alive),
        "--backlog", "2048",
        "--log-level", "warning",
    ]  # fmt: skip
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
        start_at = time.monotonic() + 0.5
        stats = Stats(start_at + args.warmup, start_at + args.warmup + args.seconds)
        sampled: dict = {}

        async def sample_cpu() -> None:
            await asyncio.sleep(max(0.0, stats.measure_at - time.monotonic()))
            sampled["server"] = [server.pid, *children_of(server.pid)]
            sampled["backends"] = pg_backends(url, db)
            sampled["server0"] = sum(proc_cpu_seconds(p) for p in sampled["server"])
            sampled["pg0"] = {p: proc_cpu_seconds(p) for p in sampled["backends"]}
            sampled["busy0"] = machine_busy()
            sampled["client0"] = time.process_time()
            await asyncio.sleep(max(0.0, stats.end_at - time.monotonic()))
            sampled["busy1"] = machine_busy()
            sampled["client1"] = time.process_time()
            sampled["server1"] = sum(proc_cpu_seconds(p) for p in sampled["server"])
            sampled["pg"] = sum(
                proc_cpu_seconds(p) - sampled["pg0"].get(p, 0.0) for p in pg_backends(url, db)
            )

        async def run_all() -> None:
            await asyncio.gather(simulate(args, tokens, start_at, stats), sample_cpu())

        asyncio.run(run_all())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    quality1 = queue_quality(url, args.queue)
    ncpu = os.cpu_count() or 1
    (b0, t0), (b1, t1) = sampled["busy0"], sampled["busy1"]
    offered = args.annotators / args.think
    report = {
        "label": args.label,
        "annotators": args.annotators,
        "think_s": args.think,
        "seconds": args.seconds,
        "workers": args.workers,
        "threads": args.threads,
        "judgments": stats.judgments,
        "judgments_per_s": stats.judgments / args.seconds,
        "offered_per_s": offered,
        "short_next": stats.short_next,
        "left_empty": stats.left_empty,
        "errors": stats.errors[:20],
        "error_count": len(stats.errors),
        "statuses": stats.statuses,
        "requests": {k: len(v) for k, v in stats.latency.items()},
        "ms": {
            kind: {p: pct(values, q) for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
            for kind, values in stats.latency.items()
        },
        "cpu_percent": {
            "machine_total": (b1 - b0) / (t1 - t0) * 100 * ncpu,
            "gunicorn": (sampled["server1"] - sampled["server0"]) / args.seconds * 100,
            "postgres_backends": sampled["pg"] / args.seconds * 100,
            "annotator_clients": (sampled["client1"] - sampled["client0"]) / args.seconds * 100,
        },
        "cpus": ncpu,
        "loadavg_before": loadavg,
        # The queue's quality settings, and what quality control did during the whole run
        # (warm-up included): gold answers recorded, pairs given votes beyond the overlap.
        "quality": {
            **quality1["settings"],
            **{k: quality1[k] - quality0[k] for k in ("gold_answers", "extended", "ambiguous")},
        },
    }
    # The shape run.py's report has, so all.py's table reads both.
    report["next_ms"] = report["ms"].get("next", {})
    report["submit_ms"] = report["ms"].get("submit", {})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"labeling-{args.label}.json").write_text(json.dumps(report, indent=1))
    cpu = report["cpu_percent"]
    print(f"{args.label}: {args.annotators} annotators, think {args.think:.1f}s (exponential), "
          f"{args.seconds:.0f}s measured, gunicorn gthread {args.workers}x{args.threads}, "
          f"load before {loadavg[0]:.2f}")  # fmt: skip
    print(f"  judgments/s       {report['judgments_per_s']:8.1f}   of {offered:.0f} offered "
          f"({stats.judgments} judgments)")  # fmt: skip
    for kind, ms in sorted(report["ms"].items()):
        print(f"  {kind:<9} ms p50 {ms['p50']:6.2f}  p95 {ms['p95']:6.2f}  p99 {ms['p99']:6.2f}"
              f"   ({report['requests'][kind]} requests)")  # fmt: skip
    print(
        f"  next short (nothing more for you) {stats.short_next}; "
        f"left with nothing on screen {stats.left_empty}; errors {len(stats.errors)}"
    )
    print(f"  CPU % (of {ncpu * 100}): machine {cpu['machine_total']:.0f}, gunicorn "
          f"{cpu['gunicorn']:.0f}, postgres {cpu['postgres_backends']:.0f}, clients "
          f"{cpu['annotator_clients']:.0f}")  # fmt: skip
    print(f"  statuses          {json.dumps(stats.statuses, sort_keys=True)}")
    print(f"  quality           {json.dumps(report['quality'], sort_keys=True)}")


def queue_quality(url: str, queue: int) -> dict:
    """The queue's quality settings, and its running counts: gold answers recorded, pairs
    extended past the overlap (adaptive overlap), pairs marked ambiguous."""
    with psycopg.connect(url, autocommit=True) as conn:
        gold_rate, overlap, overlap_max, margin, pause = conn.execute(
            "SELECT gold_rate, overlap, overlap_max, adaptive_margin, pause_accuracy "
            "FROM annotation_labelingqueue WHERE id = %s",
            [queue],
        ).fetchone()
        gold_answers = conn.execute(
            "SELECT COALESCE(sum(gold_answers), 0) FROM annotation_annotatorqueuestate "
            "WHERE queue_id = %s",
            [queue],
        ).fetchone()[0]
        extended, ambiguous = conn.execute(
            "SELECT count(*) FILTER (WHERE judgments_needed > %s AND NOT is_gold), "
            "count(*) FILTER (WHERE resolution = 'ambiguous') FROM annotation_pair "
            "WHERE queue_id = %s AND NOT fresh",
            [overlap, queue],
        ).fetchone()
    return {
        "settings": {
            "gold_rate": gold_rate,
            "overlap": overlap,
            "overlap_max": overlap_max,
            "adaptive_margin": margin,
            "pause_accuracy": pause,
        },
        "gold_answers": int(gold_answers),
        "extended": extended,
        "ambiguous": ambiguous,
    }


if __name__ == "__main__":
    sys.exit(main())
