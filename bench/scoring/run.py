"""The scoring API under load, against the same model called directly in one process.

    .venv/bin/python bench/scoring/run.py                 # both models, batch 32 and 64
    .venv/bin/python bench/scoring/run.py --models builtin --batches 64 --requests 12
    # servers side by side: a checkout of an earlier commit, and this one with smaller batches
    git worktree add /tmp/before <commit>
    .venv/bin/python bench/scoring/run.py --server before:/tmp/before --server now:. \
        --server now-128:.:128

For each model (random-weight checkpoints written by the trainer's own code: `builtin`, the
built-in network at 64 px; `clip`, the tiny CLIP-style model, hidden 32, 2 layers, 32 px; and
two whose forward pass of a batch takes tens of milliseconds on one core, `builtin-128`, the
built-in network at 128 px, and `clip-wide`, hidden 256, 4 layers, 64 px) and each batch size:

- direct: `reward_model_load(folder).score(prompts, png_bytes)` in this process, one call
  after another (PNG decoding included, as the API decodes too), in a thread of its own
  (`--direct-main-thread`: the main thread), in rounds that alternate with the API's;
- API: gunicorn (1 worker process, 8 threads: one model copy, requests batched by the engine)
  serving `POST /api/reward/score` on PostgreSQL, token auth, images as base64 JSON; `--clients`
  threads (default 4) each send `--requests` requests with persistent connections.

Prints images/s, p50 and p99 latency per request, and the API's overhead: 1 - API images/s /
direct images/s; the CPU time per image of the gunicorn worker (every thread, read in
nanoseconds from /proc/<pid>/task/*/schedstat) against the direct process's, that of its
busiest thread (the batching thread, which decodes and runs the model) and the worker's context
switches per request. The rounds take turns (direct, then each server's), and each overhead is
the median over rounds of a round against the direct round just before it, so that a change in
the machine's load hits both sides alike; "best rounds" compares the cheapest round of each
side. `--max-batch` (or a `--server`'s third part) sets the engine's REWARD_SCORING_MAX_BATCH in
the server (default: the platform's setting); a `--server`'s fourth part sets environment
variables of the server (e.g. REWARD_SCORING_MAX_WAIT_MS=5, or glibc's MALLOC_*). The
database (--db, default sp_bench_scoring) is created if missing; storage and caches go to a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from score_client import ScoreClient, json_payload  # noqa: E402

SCENES = [("cat", "left_of", "dog"), ("cup", "above", "lamp"), ("book", "right_of", "vase"),
          ("chair", "below", "clock")]  # fmt: skip
WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above",
         "below": "below"}  # fmt: skip


def database_ensure(base: str, db: str) -> str:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{db}"')
    return f"{base}/{db}"


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def in_process_setup(pg: str, db: str, torch_threads: int) -> Path:
    """Django on the bench database in this process (no server), storage in a temporary
    folder, quiet logs: breakdown.py and passes.py. Returns that folder."""
    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    django_setup({
        "DATABASE_URL": database_ensure(pg, db),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SPATIALPREFS_VAR_DIR": str(work / "var"), "MEDIA_ROOT": str(work / "media"),
        "STORAGE_BACKEND": "local", "CELERY_BROKER_URL": "memory://", "LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": str(torch_threads),
    })  # fmt: skip
    return work


def images_make(count: int, size: int) -> tuple[list[str], list[bytes]]:
    from generation_workers.backends.procedural import render

    prompts, images = [], []
    for i in range(count):
        subject, relation, reference = SCENES[i % len(SCENES)]
        structure = {
            "objects": [{"id": "o1", "name": subject, "count": 1, "attributes": {}},
                        {"id": "o2", "name": reference, "count": 1, "attributes": {}}],
            "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
            "scene": None,
        }  # fmt: skip
        images.append(render(structure, seed=i, width=size, height=size, fmt="png").encoded)
        prompts.append(f"a photo of a {subject} {WORDS[relation]} a {reference}")
    return prompts, images


# The models (random-weight checkpoints written by the trainer's code): the two tiny ones of
# the first runs, and two whose forward pass of 32-64 images takes tens of milliseconds on one
# core (a real reward model's order of cost per pass, where a request's fixed costs are small).
MODELS = ("builtin", "clip", "builtin-128", "clip-wide")


def models_register(work: Path, tag: str, kinds=MODELS) -> dict[str, tuple[str, Path]]:
    """Checkpoints written by the trainer's code, stored and promoted under their own names."""
    from tests.reward.checkpoints import (
        builtin_checkpoint,
        checkpoint_upload,
        clip_checkpoint,
        tiny_clip_folder,
    )
    from training_bridge.reward_models.services.registry import (
        reward_model_promote,
        reward_model_register_checkpoint,
    )

    builders = {
        "builtin": lambda: builtin_checkpoint(work / "builtin", seed=0, size=64),
        "clip": lambda: clip_checkpoint(
            work / "clip-rm", clip_folder=tiny_clip_folder(work / "tiny-clip"), seed=0
        ),
        "builtin-128": lambda: builtin_checkpoint(work / "builtin-128", seed=0, size=128),
        "clip-wide": lambda: clip_checkpoint(
            work / "clip-wide-rm",
            clip_folder=tiny_clip_folder(work / "clip-wide", image_size=64, hidden=256, layers=4),
            seed=0,
        ),
    }
    out = {}
    for kind in kinds:
        folder = builders[kind]()
        name = f"bench-{kind}-{tag}"
        model = reward_model_register_checkpoint(
            name=name, artifact_key=checkpoint_upload(folder)
        ).model
        reward_model_promote(model_id=model.pk)
        out[kind] = (name, folder)
    return out


def token_make() -> str:
    from accounts.services import api_token_create
    from annotation.services.annotators import user_create
    from config.roles import Role

    user = user_create(username="bench-rl", password="bench-rl-pass", role=Role.ML,
                       exist_ok=True)  # fmt: skip
    return api_token_create(user=user, name="bench").key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(env: dict[str, str], port: int, threads: int, log: Path, *,
                   root: Path = ROOT) -> subprocess.Popen:  # fmt: skip
    """gunicorn (this checkout's virtual environment) serving `root`'s config.wsgi; env
    BENCH_SCORING_MAX_BATCH selects `server_settings` (the platform's settings with that batch
    limit)."""
    argv = [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "--bind",
            f"127.0.0.1:{port}", "--workers", "1", "--threads", str(threads),
            "--worker-class", "gthread", "--timeout", "600"]  # fmt: skip
    env = {**os.environ, **env, "PYTHONPATH": str(root)}
    if env.get("BENCH_SCORING_MAX_BATCH"):
        env["DJANGO_SETTINGS_MODULE"] = "server_settings"
        env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parent)
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()[-3000:]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


_SCORERS: dict[Path, object] = {}


def direct_run(folder: Path, prompts, images, batch: int, calls: int, *,
               main_thread: bool = False) -> dict[str, float]:  # fmt: skip
    """`calls` calls of `reward_model_load(folder).score(prompts, png_bytes)` one after another,
    in a thread of their own unless `main_thread` (as the server's batching thread: here the
    main thread's malloc arena made the built-in model's forward pass 0-30% slower, and much
    noisier, than the same pass in any other thread; MALLOC_ARENA_MAX=1 evens them out)."""
    from training_bridge.training.trainer.checkpoint import reward_model_load

    if folder not in _SCORERS:
        _SCORERS[folder] = reward_model_load(folder)
        _SCORERS[folder].score(prompts[:batch], images[:batch], batch_size=batch)  # warm-up
    scorer = _SCORERS[folder]
    latencies: list[float] = []

    def loop() -> None:
        for call in range(calls):
            offset = (call * batch) % (len(images) - batch + 1)
            t0 = time.perf_counter()
            scorer.score(prompts[offset : offset + batch], images[offset : offset + batch],
                         batch_size=batch)  # fmt: skip
            latencies.append(time.perf_counter() - t0)

    cpu = time.process_time()
    started = time.perf_counter()
    if main_thread:
        loop()
    else:
        thread = threading.Thread(target=loop, name="direct")
        thread.start()
        thread.join()
    wall = time.perf_counter() - started
    return {"ips": batch * calls / wall, "cpu_ms_per_image": 1000 * (time.process_time() - cpu)
            / (batch * calls), "latencies": latencies}  # fmt: skip


def worker_threads(master: subprocess.Popen) -> dict[str, tuple[float, int]]:
    """(CPU seconds, context switches) so far of every thread of gunicorn's worker processes.
    schedstat counts in nanoseconds (/proc/<pid>/stat in clock ticks of 10 ms, too coarse for
    a round of a few hundred ms); the worker's threads live as long as it does."""
    out = {}
    for pid in Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split():
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                ns = int((task / "schedstat").read_text().split()[0])
                status = (task / "status").read_text().splitlines()
            except OSError:  # a thread that ended meanwhile
                continue
            switches = sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
            out[f"{pid}/{task.name}"] = (ns / 1e9, switches)
    return out


def worker_cpu_seconds(master: subprocess.Popen) -> float:
    """CPU time (user + system) of gunicorn's worker processes so far."""
    return sum(cpu for cpu, _ in worker_threads(master).values())


def api_run(url: str, token: str, name: str, prompts, images, batch: int, clients: int,
            requests: int, server: subprocess.Popen) -> dict[str, float]:  # fmt: skip
    payloads = []
    for i in range(max(4, clients)):
        offset = (i * batch) % (len(images) - batch + 1)
        payloads.append(json.dumps(json_payload(prompts[offset : offset + batch],
                                                images[offset : offset + batch],
                                                model=name)).encode())  # fmt: skip
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client_loop(index: int) -> None:
        client = ScoreClient(url, token)
        try:
            client.post_json(payloads[index % len(payloads)])  # warm-up and connect
            barrier.wait()
            mine = []
            for r in range(requests):
                t0 = time.perf_counter()
                answer = client.post_json(payloads[(index + r) % len(payloads)])
                mine.append(time.perf_counter() - t0)
                assert len(answer["scores"]) == batch
            with lock:
                latencies.extend(mine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    before = worker_threads(server)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    after = worker_threads(server)
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    count = batch * clients * requests
    spent = [(cpu - before.get(tid, (0.0, 0))[0], n - before.get(tid, (0.0, 0))[1])
             for tid, (cpu, n) in after.items()]  # fmt: skip
    return {
        "ips": count / wall,
        "cpu_ms_per_image": 1000 * sum(cpu for cpu, _ in spent) / count,
        "busiest_ms_per_image": 1000 * max(cpu for cpu, _ in spent) / count,
        "switches_per_request": sum(n for _, n in spent) / (clients * requests),
        "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sp_bench_scoring")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--models", nargs="+", default=["builtin", "clip"], choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=4, help="per client and round")
    parser.add_argument("--direct-calls", type=int, default=8, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads")
    parser.add_argument(
        "--torch-threads", type=int, default=1,
        help="intra-op threads, both sides (on 2 shared cores, 2 threads spin against each "
        "other: 3-9 ms of CPU per image instead of 0.7 ms)",
    )  # fmt: skip
    parser.add_argument("--max-batch", type=int, help="the server's REWARD_SCORING_MAX_BATCH")
    parser.add_argument(
        "--server", action="append", metavar="LABEL:ROOT[:MAX_BATCH[:KEY=VALUE,...]]",
        help="serve from this checkout (ROOT, '.' for this one; MAX_BATCH: the engine's batch "
        "limit; then environment variables of the server) under LABEL; repeat to run several "
        "servers side by side, their rounds taking turns with the direct ones (default: "
        "api:.:--max-batch)",
    )  # fmt: skip
    parser.add_argument("--direct-main-thread", action="store_true",
                        help="call the model directly from the main thread (default: a thread "
                        "of its own, as the server's batching thread)")  # fmt: skip
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    env = {
        "DATABASE_URL": database_ensure(args.pg, args.db),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SPATIALPREFS_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "STORAGE_BACKEND": "local",
        "CELERY_BROKER_URL": "memory://",
        "OMP_NUM_THREADS": str(args.torch_threads),
    }
    django_setup(env)
    import torch

    torch.set_num_threads(args.torch_threads)
    tag = str(int(time.time()))
    models = models_register(work, tag, args.models)
    token = token_make()
    prompts, images = images_make(256, 64)
    servers: dict[str, tuple[str, subprocess.Popen]] = {}
    load = os.getloadavg()[0]
    rows = []
    try:
        for label, root, max_batch, extra_env in servers_parse(args):
            port = free_port()
            server_env = {**env, **extra_env, "BENCH_SCORING_MAX_BATCH": str(max_batch or "")}
            process = gunicorn_start(server_env, port, args.threads, work / f"{label}.log",
                                     root=root)  # fmt: skip
            servers[label] = (f"http://127.0.0.1:{port}", process)
        for kind in args.models:
            name, folder = models[kind]
            for batch in args.batches:
                rows.extend(config_run(args, servers, token, name, folder, prompts, images,
                                       batch, kind))  # fmt: skip
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(timeout=30)
    table_print(args, load, os.getloadavg()[0], rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "args": vars(args), "rows": rows},
                                              indent=1))  # fmt: skip


def servers_parse(args) -> list[tuple[str, Path, int | None, dict[str, str]]]:
    specs = args.server or [f"api:.:{args.max_batch or ''}"]
    out = []
    for spec in specs:
        label, _, rest = spec.partition(":")
        root, _, rest = rest.partition(":")
        max_batch, _, extra = rest.partition(":")
        root_path = ROOT if root in ("", ".") else Path(root).resolve()
        if not (root_path / "config" / "wsgi.py").is_file():
            raise SystemExit(f"--server {spec}: {root_path} is not a checkout of the platform")
        env = dict(item.split("=", 1) for item in extra.split(",") if "=" in item)
        out.append((label or "api", root_path, int(max_batch) if max_batch else None, env))
    return out


def _summary(runs: list[dict], direct: list[dict] | None) -> dict:
    latencies = [x for run in runs for x in run["latencies"]]
    out = {
        "ips": statistics.median(run["ips"] for run in runs),
        "cpu_ms_per_image": statistics.median(run["cpu_ms_per_image"] for run in runs),
        "best_cpu_ms_per_image": min(run["cpu_ms_per_image"] for run in runs),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "rounds_ips": [round(run["ips"], 1) for run in runs],
        "rounds_cpu_ms_per_image": [round(run["cpu_ms_per_image"], 4) for run in runs],
    }
    for key in ("busiest_ms_per_image", "switches_per_request"):
        if key in runs[0]:
            out[key] = statistics.median(run[key] for run in runs)
    if direct is not None:  # each round against the direct round just before it
        out["overhead"] = statistics.median(
            1 - run["ips"] / base["ips"] for run, base in zip(runs, direct, strict=True)
        )
        out["cpu_overhead"] = statistics.median(
            run["cpu_ms_per_image"] / base["cpu_ms_per_image"] - 1
            for run, base in zip(runs, direct, strict=True)
        )
        best = min(run["cpu_ms_per_image"] for run in direct)
        out["best_cpu_overhead"] = out["best_cpu_ms_per_image"] / best - 1
    return out


def config_run(args, servers, token, name, folder, prompts, images, batch, kind) -> list[dict]:
    """Rounds in turn: direct, then per server the API with N clients and with 1 client, so
    that a change in the machine's load hits every side alike. Overheads are the medians of
    each round's against the direct round just before it; "best" compares the cheapest rounds
    (the machine's load only ever adds CPU time)."""
    direct: list[dict] = []
    api: dict[str, list[dict]] = {label: [] for label in servers}
    one: dict[str, list[dict]] = {label: [] for label in servers}
    for _ in range(args.rounds):
        direct.append(direct_run(folder, prompts, images, batch, args.direct_calls,
                                 main_thread=args.direct_main_thread))  # fmt: skip
        for label, (url, process) in servers.items():
            api[label].append(api_run(url, token, name, prompts, images, batch, args.clients,
                                      args.requests, process))  # fmt: skip
            one[label].append(api_run(url, token, name, prompts, images, batch, 1,
                                      args.requests, process))  # fmt: skip
    return [
        {"model": kind, "batch": batch, "server": label, "direct": _summary(direct, None),
         "api": _summary(api[label], direct), "api_1": _summary(one[label], direct)}
        for label in servers
    ]  # fmt: skip


def table_print(args, load_start: float, load_end: float, rows: list[dict]) -> None:
    servers = ", ".join(
        f"{label} = {'this checkout' if root == ROOT else root}, batches of at most "
        f"{max_batch or 'REWARD_SCORING_MAX_BATCH (settings: 256)'}"
        + "".join(f", {key}={value}" for key, value in extra_env.items())
        for label, root, max_batch, extra_env in servers_parse(args)
    )
    print(f"load average {load_start:.1f} at start, {load_end:.1f} at end (2 cores); "
          f"{args.rounds} rounds in turn; API: {args.clients} clients x {args.requests} "
          f"requests per round, gunicorn 1 worker x {args.threads} threads ({servers}); direct "
          f"calls in {'the main thread' if args.direct_main_thread else 'a thread of their own'}"
          f"; torch {args.torch_threads} thread(s) on both sides")  # fmt: skip
    head = ("model", "batch", "server", "direct img/s", "API img/s", "p50 ms", "p99 ms",
            "overhead", "CPU ms/img direct", "CPU ms/img API", "CPU overhead",
            "CPU overhead, best rounds", "batching thread ms/img", "switches/request",
            "1 client img/s", "1 client p99 ms", "1 client CPU overhead")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        d, a, o = row["direct"], row["api"], row["api_1"]
        cells = (row["model"], row["batch"], row["server"], f"{d['ips']:.0f}", f"{a['ips']:.0f}",
                 f"{a['p50_ms']:.0f}", f"{a['p99_ms']:.0f}", f"{a['overhead']:.1%}",
                 f"{d['cpu_ms_per_image']:.3f}", f"{a['cpu_ms_per_image']:.3f}",
                 f"{a['cpu_overhead']:.1%}", f"{a['best_cpu_overhead']:.1%}",
                 f"{a['busiest_ms_per_image']:.3f}", f"{a['switches_per_request']:.0f}",
                 f"{o['ips']:.0f}", f"{o['p99_ms']:.0f}", f"{o['cpu_overhead']:.1%}")  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
