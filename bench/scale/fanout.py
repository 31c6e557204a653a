"""Generation fan-out (issue 19): W simulated GPU workers render one campaign of N images.

    .venv/bin/python bench/scale/fanout.py --images 20000 --workers 10 --concurrency 10 \\
        --render-seconds 2 [--kill whole|children --kill-at 0.4] [--no-beat] [--keep]

Each "GPU" is a Celery pool process on the `gpu` queue whose backend sleeps a fixed render
time per image (bench/scale/simulated_backend.py, selected by a GeneratorConfig naming the
`simulated` backend registered through GENERATION_EXTRA_BACKENDS); a Celery worker with
concurrency c is a machine with c GPUs. Everything else is the product's: launch publishes
batches of the config's batch size to Redis, workers claim with leases, write behind, store
content-hash files (local storage), record, sweep dead workers' leases; Celery beat sends
the recovery sweep every RECOVERY_SWEEP_SECONDS to a `cpu` worker, as in production
(--no-beat: without it, to show what the workers' lease sweep recovers alone).

It starts its own PostgreSQL cluster (the shared server's max_connections of 100 is below what
W workers hold: each pool process keeps a connection for its task and one for its writer
thread) and its own Redis (so the broker's command counts are this run's alone), creates the
database --db and a campaign of N candidates, starts the workers, launches, and measures
images/s from the launch and from the first to the last image written, the CPU seconds of the
workers, PostgreSQL and Redis, and PostgreSQL's transactions and Redis' commands per image.
With --kill it kill -9s a tenth of the GPU processes once --kill-at of the images are written:
`whole` kills whole workers (parent and pool processes: a machine lost), `children` one pool
process in each of that many workers (a GPU process OOM-killed; Celery starts a new one).
Then it checks in PostgreSQL and in storage that every candidate has exactly one image (done,
one distinct key and file each, the file hashing to its key, no other file) and reports what
the dead processes held and how long it took to come back, and which sweep brought it back.
Every process it starts is stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
BACKEND = "simulated"
BACKEND_MODULE = "bench.scale.simulated_backend"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


class Processes:
    """Everything this run started, stopped in reverse order by `stop_all` (also on failure)."""

    def __init__(self) -> None:
        self.groups: list[subprocess.Popen] = []
        self.pg_data: Path | None = None

    def start(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.groups.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.groups):
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in reversed(self.groups):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # pool processes left behind, if any
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"warning: process group {proc.pid} did not stop", file=sys.stderr)
        if self.pg_data is not None:
            _pg_ctl(self.pg_data, "stop", "-m", "fast")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if not found:
        raise SystemExit(f"no {name}: install postgresql")
    return str(found)


def _pg_ctl(data: Path, *args: str) -> None:
    subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-w", *args]), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def postgres_start(procs: Processes, scratch: Path, max_connections: int) -> int:
    data = scratch / "pg"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(scratch, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c max_connections={max_connections}"
    )
    procs.pg_data = data
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
                      "-o", options, "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return port


def redis_start(procs: Processes, scratch: Path, env: dict[str, str]) -> int:
    port = free_port()
    procs.start(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no"],
        scratch / "redis.log", env,
    )  # fmt: skip
    wait_port(port)
    return port


def celery(args: list[str]) -> list[str]:
    return [str(VENV_BIN / "celery"), "-A", "config", *args]


def workers_wait_ready(logs: list[Path], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = sum(1 for log in logs if log.exists() and b" ready." in log.read_bytes())
        if ready == len(logs):
            return
        time.sleep(1)
    raise SystemExit(f"only {ready} of {len(logs)} workers ready after {seconds:.0f} s")


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes, their live descendants and the children they reaped."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            continue
    return total


def tree_memory(pids: list[int]) -> dict[str, float]:
    """RSS and PSS (shared pages split among their sharers) of these processes and their
    descendants, MiB."""
    rss = pss = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                info = proc.memory_full_info()
                rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
        except psutil.Error:
            continue
    return {"rss": round(rss / 2**20), "pss": round(pss / 2**20)}


def redis_commands(port: int) -> int:
    import redis

    return int(redis.Redis(port=port).info("stats")["total_commands_processed"])


def pg_stats(cursor_url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(cursor_url) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted"
            " FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]), int(row[1])


def campaign_prepare(images: int, batch: int, render_seconds: float, seeds: int) -> int:
    from generation_workers.models import GeneratorConfig, Prompt, PromptSet
    from generation_workers.services.campaigns import campaign_create

    n_prompts = math.ceil(images / seeds)
    tag = uuid.uuid4().hex[:6]
    prompt_set = PromptSet.objects.create(name=f"fanout-{tag}", source="template", status="ready")
    words = ["cat", "dog", "cup", "chair", "lamp", "book", "table", "car"]
    Prompt.objects.bulk_create(
        (
            Prompt(
                prompt_set=prompt_set,
                text=f"a {words[i % 8]} to the left of a {words[(i // 8) % 8]} {i}",
                normalized_text=f"{tag}-{i}",
                structure={"objects": [], "relations": [], "scene": None},
                group_key=f"{tag}-{i}",
            )
            for i in range(n_prompts)
        ),
        batch_size=5000,
    )
    # Through the ORM: the API offers the built-in backends only (config_rules).
    config = GeneratorConfig.objects.create(
        name=f"simulated-{tag}", backend=BACKEND, width=8, height=8, batch_size=batch,
        extra_args={"render_seconds": render_seconds}, image_format="png",
        check_status=GeneratorConfig.CheckStatus.OK,
    )  # fmt: skip
    campaign = campaign_create(
        name=f"fanout-{tag}", prompt_set_id=prompt_set.pk, config_ids=[config.pk],
        seeds_per_prompt=seeds,
    )  # fmt: skip
    return campaign.pk


def kill(workers: list[subprocess.Popen], mode: str, processes: int, concurrency: int) -> list[int]:
    """kill -9 `processes` GPU processes: whole workers (parent and pool) or one pool process in
    each of that many workers. Returns the pids killed."""
    killed: list[int] = []
    if mode == "whole":
        for proc in workers[: math.ceil(processes / concurrency)]:
            tree = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
            _signal_group(proc.pid, signal.SIGKILL)
            killed += tree
    else:
        for proc in workers[:processes]:
            child = psutil.Process(proc.pid).children()[0]
            child.send_signal(signal.SIGKILL)
            killed.append(child.pid)
    return killed


def storage_check(media: Path, rows: list[tuple[int, str, str]]) -> dict[str, int]:
    """Files under candidates/ against the candidates' keys: each key one file hashing to it."""
    files = {
        str(path.relative_to(media)): path
        for path in (media / "candidates").rglob("*")
        if path.is_file()
    }
    keys = Counter(key for _, key, _ in rows)
    bad_hash = sum(
        1
        for _, key, sha in rows
        if key in files and hashlib.sha256(files[key].read_bytes()).hexdigest() != sha
    )
    return {
        "files": len(files),
        "keys_without_file": sum(1 for key in keys if key not in files),
        "files_without_candidate": sum(1 for key in files if key not in keys),
        "keys_shared": sum(1 for count in keys.values() if count > 1),
        "files_not_matching_hash": bad_hash,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=10, help="Celery workers (machines)")
    parser.add_argument("--concurrency", type=int, default=10, help="GPU processes per worker")
    parser.add_argument("--render-seconds", type=float, default=2.0, help="per image")
    parser.add_argument("--batch", type=int, default=4, help="the config's batch size")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per prompt")
    parser.add_argument("--kill", choices=("none", "whole", "children"), default="none")
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of images written")
    parser.add_argument("--kill-share", type=float, default=0.1, help="of the GPU processes")
    parser.add_argument(
        "--no-beat", action="store_true", help="no Celery beat: only the workers' lease sweep"
    )
    parser.add_argument("--max-seconds", type=float, default=900, help="from launch, then give up")
    parser.add_argument("--db", default="sp_fanout")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args()

    # `timeout` or Ctrl-C: stop what was started (the finally below) instead of leaving it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gpu_processes = args.workers * args.concurrency
    scratch = Path(tempfile.mkdtemp(prefix="fanout-", dir="/tmp"))
    procs = Processes()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        "MEDIA_ROOT": str(scratch / "media"),
        "STORAGE_BACKEND": "local",
        "GENERATION_EXTRA_BACKENDS": f"{BACKEND}={BACKEND_MODULE}",
        "PYTHONPATH": str(ROOT),
    }
    try:
        pg_port = postgres_start(procs, scratch, max_connections=3 * gpu_processes + 50)
        base = f"postgres://postgres@127.0.0.1:{pg_port}"
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{args.db}"')
        redis_port = redis_start(procs, scratch, env)
        env.update(
            DATABASE_URL=f"{base}/{args.db}", CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0"
        )
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Max, Min, Sum
        from django.utils import timezone

        from generation_workers.models import Campaign, Candidate
        from generation_workers.services.campaigns import campaign_launch

        call_command("migrate", verbosity=0)
        campaign_id = campaign_prepare(args.images, args.batch, args.render_seconds, args.seeds)
        connection.close()

        logs = [scratch / f"gpu{i}.log" for i in range(args.workers)]
        workers = [
            procs.start(
                celery(
                    [
                        "worker",
                        "-Q",
                        "gpu",
                        "--concurrency",
                        str(args.concurrency),
                        "--prefetch-multiplier",
                        "1",
                        "--hostname",
                        f"gpu{i}@%h",
                        "--loglevel",
                        "INFO",
                    ]
                ),
                log,
                env,
            )  # fmt: skip
            for i, log in enumerate(logs)
        ]
        procs.start(
            celery(["worker", "-Q", "cpu", "--concurrency", "1", "--hostname", "cpu@%h",
                    "--loglevel", "INFO"]),
            scratch / "cpu.log", env,
        )  # fmt: skip
        if not args.no_beat:
            procs.start(
                celery(["beat", "-s", str(scratch / "beat-schedule"), "--loglevel", "INFO"]),
                scratch / "beat.log", env,
            )  # fmt: skip
        started_workers = time.monotonic()
        workers_wait_ready(logs)
        startup_s = time.monotonic() - started_workers
        time.sleep(2)

        pg_pids = [int((scratch / "pg" / "postmaster.pid").read_text().split()[0])]
        redis_pid = procs.groups[0].pid
        worker_pids = [w.pid for w in workers]
        cpu_before = (tree_cpu(worker_pids), tree_cpu(pg_pids), tree_cpu([redis_pid]))
        dburl = env["DATABASE_URL"]
        redis_before, pg_before = redis_commands(redis_port), pg_stats(dburl)
        load_before = os.getloadavg()

        launched_at = timezone.now()
        t_launch = time.monotonic()
        campaign_launch(campaign_id=campaign_id)
        total = Candidate.objects.filter(campaign_id=campaign_id).count()
        killed: list[int] = []
        kill_at = None
        killed_cpu = 0.0
        at_kill: dict[str, int] = {}
        status = Campaign.Status.RUNNING
        last_print = 0.0
        while time.monotonic() - t_launch < args.max_seconds:
            time.sleep(1)
            done = Candidate.objects.filter(
                campaign_id=campaign_id, status=Candidate.Status.DONE
            ).count()
            elapsed = time.monotonic() - t_launch
            if elapsed - last_print >= 30:
                print(f"  {elapsed:6.0f} s  {done}/{total} done", flush=True)
                last_print = elapsed
            if args.kill != "none" and kill_at is None and done >= args.kill_at * total:
                n = max(1, round(args.kill_share * gpu_processes))
                victims = workers[: math.ceil(n / args.concurrency)] if args.kill == "whole" else []
                killed_cpu = tree_cpu([w.pid for w in victims])
                kill_at = timezone.now()
                killed = kill(workers, args.kill, n, args.concurrency)
                # whole workers are gone; a killed pool process is replaced by its worker
                n_killed = (
                    math.ceil(n / args.concurrency) * args.concurrency
                    if args.kill == "whole"
                    else 0
                )
                at_kill = {
                    "done": done,
                    "leased": Candidate.objects.filter(
                        campaign_id=campaign_id,
                        status=Candidate.Status.PENDING,
                        leased_until__isnull=False,
                    ).count(),
                }
                print(f"  {elapsed:6.0f} s  kill -9 ({args.kill}): {len(killed)} processes "
                      f"{killed}", flush=True)  # fmt: skip
            status = Campaign.objects.values_list("status", flat=True).get(pk=campaign_id)
            if status != Campaign.Status.RUNNING:
                break
        wall_s = time.monotonic() - t_launch
        alive = [w.pid for w in workers if w.poll() is None]
        memory = tree_memory(alive)
        cpu_after = (tree_cpu(alive) + killed_cpu, tree_cpu(pg_pids), tree_cpu([redis_pid]))
        redis_after, pg_after = redis_commands(redis_port), pg_stats(dburl)
        load_after = os.getloadavg()
        unacked = _redis_unacked(redis_port)

        items = Candidate.objects.filter(campaign_id=campaign_id)
        span = items.filter(status=Candidate.Status.DONE).aggregate(
            first=Min("finished_at"), last=Max("finished_at"), claims=Sum("attempts")
        )
        by_status = Counter(items.values_list("status", flat=True))
        rows = list(
            items.filter(status=Candidate.Status.DONE).values_list(
                "pk", "storage_key", "content_sha256"
            )
        )
        store = storage_check(scratch / "media", rows)
        leftovers = sum(1 for p in (scratch / "media").rglob("*") if p.is_file()) - store["files"]
        attempts = Counter(items.values_list("attempts", flat=True))
        result: dict[str, object] = {
            "images": total,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "gpu_processes": gpu_processes,
            "render_seconds": args.render_seconds,
            "batch": args.batch,
            "beat": not args.no_beat,
            "campaign_status": status,
            "statuses": dict(by_status),
            "startup_s": round(startup_s, 1),
            "workers_memory_mib_at_end": memory,
            "wall_launch_to_done_s": round(wall_s, 1),
            "ideal_s": round(total * args.render_seconds / gpu_processes, 1),
            "load_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "unacked_messages_left": unacked,
            "attempts_histogram": {str(k): v for k, v in sorted(attempts.items())},
            "claims": span["claims"],
            "storage": store,
            "files_outside_candidates": leftovers,
            "distinct_keys": len({key for _, key, _ in rows}),
            "distinct_sha": len({sha for _, _, sha in rows}),
        }
        if span["first"] and span["last"]:
            first_last = (span["last"] - span["first"]).total_seconds()
            launch_last = (span["last"] - launched_at).total_seconds()
            ideal_rate = gpu_processes / args.render_seconds
            result.update(
                launch_to_last_s=round(launch_last, 1),
                first_to_last_s=round(first_last, 1),
                images_per_s_launch_to_last=round(len(rows) / launch_last, 2),
                # Every process writes its first batch about when the first image is written:
                # first to last spans the other images (ideal: (N / W - batch) * t).
                images_per_s_first_to_last=round(
                    (len(rows) - gpu_processes * args.batch) / first_last, 2
                ),
                ideal_images_per_s=ideal_rate,
                share_of_ideal=round(len(rows) / launch_last / ideal_rate, 4),
                share_of_ideal_first_to_last=round(
                    (len(rows) - gpu_processes * args.batch) / first_last / ideal_rate, 4
                ),
            )
        n_done = max(1, len(rows))
        cpu = [after - before for after, before in zip(cpu_after, cpu_before, strict=True)]
        result.update(
            cpu_s_workers=round(cpu[0], 1),
            cpu_s_postgres=round(cpu[1], 1),
            cpu_s_redis=round(cpu[2], 1),
            cpu_ms_per_image={
                "workers": round(cpu[0] / n_done * 1000, 2),
                "postgres": round(cpu[1] / n_done * 1000, 2),
                "redis": round(cpu[2] / n_done * 1000, 2),
            },
            redis_commands_per_image=round((redis_after - redis_before) / n_done, 1),
            pg_transactions_per_image=round((pg_after[0] - pg_before[0]) / n_done, 2),
            pg_rows_written_per_image=round((pg_after[1] - pg_before[1]) / n_done, 2),
        )
        if kill_at is not None:
            again = items.filter(attempts__gt=1)
            back = again.aggregate(last=Max("finished_at"))["last"]
            result.update(
                kill=args.kill,
                killed_pids=killed,
                killed_at_s=round((kill_at - launched_at).total_seconds(), 1),
                at_kill=at_kill,
                claimed_again=again.count(),
                # what was taken again finished by then (behind the batches already queued)
                recovered_within_s=round((back - kill_at).total_seconds(), 1) if back else None,
                # the ideal with the processes left: the rest at their rate after the kill
                ideal_s_with_kill=round(
                    (kill_at - launched_at).total_seconds()
                    + (total - at_kill["done"]) * args.render_seconds / (gpu_processes - n_killed),
                    1,
                ),
                last_image_after_kill_s=round((span["last"] - kill_at).total_seconds(), 1),
            )
        result.update(_sweeps(scratch, logs, kill_at))
        result["exactly_once"] = (
            by_status.get(Candidate.Status.DONE, 0) == total
            and store["files"] == total
            and not any(v for k, v in store.items() if k != "files")
            and result["distinct_keys"] == total
            and leftovers == 0
        )
        print(json.dumps(result, indent=1, default=str))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, default=str))
    finally:
        procs.stop_all()
        if args.keep:
            print(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _redis_unacked(port: int) -> int:
    import redis

    return int(redis.Redis(port=port).hlen("unacked"))


def _sweeps(scratch: Path, logs: list[Path], kill_at: datetime | None) -> dict[str, object]:
    """What each sweep brought back, and when (seconds after the kill), from the logs."""
    requeued = 0
    when: list[float] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "generation.leases.swept" in line:
                count = int(line.split("requeued=")[1].split()[0])
                requeued += count
                if count and kill_at is not None:
                    # Celery's log lines start with the local time: "[2026-12-07 14:27:04,031:"
                    logged = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                    local_kill = kill_at.astimezone().replace(tzinfo=None)
                    when.append(round((logged - local_kill).total_seconds(), 1))
    cpu_log = (scratch / "cpu.log").read_text(errors="replace")
    recovered = sum(
        int(line.split("items=")[1].split()[0])
        for line in cpu_log.splitlines()
        if "generation.campaign.recovered" in line
    )
    return {
        "lease_sweep_requeued": requeued,
        "lease_sweep_requeued_after_kill_s": sorted(when),
        "beat_sweeps_run": cpu_log.count("Task generation.recover[") // 2,
        "beat_sweep_republished": recovered,
    }


if __name__ == "__main__":
    main()
