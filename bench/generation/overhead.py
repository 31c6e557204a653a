"""Platform overhead per image, and batch 8 vs batch 1, with the tiny Stable Diffusion pipeline.

    .venv/bin/python bench/generation/overhead.py --images 64 --batch 1 8 --storage s3

For each batch size a warm worker (one real Celery worker process, concurrency 1, pipeline
already loaded) renders a campaign of N images end to end: launch -> Redis -> worker (claim,
one forward pass per batch, PNG encoding, content-hash storage, record) -> campaign completed.
Overhead per image = (end to end - the bare pipeline calls on the same batches) / N, with the
bare calls timed two ways: inside the worker around `pipeline(...)` itself (same warm process,
same moment: the main figure, robust to a busy machine), and again in this process afterwards
with the same thread count (a check). Also shown: the worker's encode+store time per image.

Creates (dropping it first) the database --db; uses Redis --broker; S3 is moto's server
(started here) or local files. Prints a table; nothing is kept but the database.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate(base: str, db: str) -> None:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def moto_start(env: dict[str, str]) -> subprocess.Popen:
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    env.update(
        STORAGE_BACKEND="s3",
        S3_BUCKET="bench",
        S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="bench")
    return proc


def worker_start(
    env: dict[str, str], queue: str, log: Path, *, pool: str = "prefork", prefetch: int = 1
) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--pool",
            pool,
            "--concurrency",
            "1",
            "--prefetch-multiplier",
            str(prefetch),
            "--hostname",
            f"bench-{queue}@%h",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc


def prompts_make(n: int, tag: str):
    from generation_workers.models import Prompt, PromptSet

    words = ["cat", "dog", "cup", "chair", "lamp", "book", "table", "car"]
    prompt_set = PromptSet.objects.create(name=f"bench-{tag}", source="template", status="ready")
    Prompt.objects.bulk_create(
        Prompt(
            prompt_set=prompt_set,
            text=f"a photo of a {words[i % 8]} to the left of a {words[(i // 8) % 8]} {i}",
            normalized_text=f"{tag}-{i}",
            structure={"objects": [], "relations": [], "scene": None},
            group_key=f"{tag}-{i}",
        )
        for i in range(n)
    )
    return prompt_set


def campaign_run(prompt_set, config, *, base_seed: int) -> tuple[float, float, float]:
    """Seconds from launch to completion, and of it the worker's pipeline calls and its
    encoding + storage (from the candidates' metadata)."""
    from generation_workers.models import Campaign
    from generation_workers.services.campaigns import campaign_create, campaign_launch

    campaign = campaign_create(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        prompt_set_id=prompt_set.pk,
        config_ids=[config.pk],
        base_seed=base_seed,
    )
    started = time.perf_counter()
    campaign_launch(campaign_id=campaign.pk)
    while True:
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).get()
        if status != Campaign.Status.RUNNING:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if status != Campaign.Status.COMPLETED:
        raise SystemExit(f"campaign ended {status}")
    pipeline_s = store_s = 0.0
    for params in campaign.candidates.values_list("generation_params", flat=True):
        pipeline_s += params["batch_ms"] / params["batch_size"] / 1000
        store_s += params["store_ms"] / 1000
    return elapsed, pipeline_s, store_s


def bare_run(pipeline, prompt_set, config, *, base_seed: int) -> float:
    """The same batches through the pipeline alone (no Celery, no encoding, no storage)."""
    import torch

    texts = list(prompt_set.prompts.order_by("id").values_list("text", flat=True))
    started = time.perf_counter()
    for start in range(0, len(texts), config.batch_size):
        chunk = texts[start : start + config.batch_size]
        pipeline(
            prompt=chunk,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            width=config.width,
            height=config.height,
            generator=[torch.Generator().manual_seed(base_seed) for _ in chunk],
            output_type="pil",
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images per measured campaign")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, worker and bare")
    parser.add_argument("--repeat", type=int, default=3, help="runs per batch size; best shown")
    parser.add_argument("--storage", choices=("s3", "local"), default="s3")
    parser.add_argument("--pool", choices=("prefork", "solo"), default="prefork")
    parser.add_argument("--prefetch", type=int, default=1, help="worker prefetch multiplier")
    parser.add_argument("--db", default="sp_bench_generation")
    parser.add_argument("--db-base", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    recreate(args.db_base, args.db)
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.db_base}/{args.db}",
        "CELERY_BROKER_URL": args.broker,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "OMP_NUM_THREADS": str(args.threads),
        "MEDIA_ROOT": str(scratch / "media"),
        "STORAGE_BACKEND": "local",
    }
    moto = moto_start(env) if args.storage == "s3" else None
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import torch
    from diffusers import StableDiffusionPipeline

    from generation_workers.backends.tiny import tiny_pipeline_save
    from generation_workers.services.configs import generator_config_create

    torch.set_num_threads(args.threads)
    folder = tiny_pipeline_save(scratch / "tiny-sd")
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    worker = worker_start(
        env, queue, scratch / "worker.log", pool=args.pool, prefetch=args.prefetch
    )
    pipeline = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    rows = []
    try:
        for batch in args.batch:
            config = generator_config_create(
                name=f"tiny-b{batch}", backend="diffusers", model_path=str(folder),
                num_inference_steps=args.steps, width=args.size, height=args.size,
                batch_size=batch, queue=queue,
            )  # fmt: skip
            campaign_run(prompts_make(batch, f"warm{batch}"), config, base_seed=10**6)  # warm
            bare_run(pipeline, prompts_make(batch, f"bwarm{batch}"), config, base_seed=1)
            best_e2e = (float("inf"), 0.0, 0.0)
            best_bare = float("inf")
            for run in range(args.repeat):
                prompt_set = prompts_make(args.images, f"b{batch}-r{run}")
                best_e2e = min(best_e2e, campaign_run(prompt_set, config, base_seed=run))
                best_bare = min(best_bare, bare_run(pipeline, prompt_set, config, base_seed=run))
            rows.append((batch, *best_e2e, best_bare))
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        if moto:
            moto.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    n = args.images
    load = os.getloadavg()
    print(
        f"tiny SD, {args.size}x{args.size}, {args.steps} steps, {n} images per campaign, "
        f"{args.threads} torch thread(s), storage {args.storage}, pool {args.pool}, prefetch "
        f"{args.prefetch}, best of {args.repeat}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"{'batch':>5} {'e2e s':>7} {'pipeline s':>10} {'overhead ms/img':>15} {'% of pipe':>9} "
          f"{'e2e img/s':>9} {'encode+store ms/img':>19} | {'bare here s':>11} "
          f"{'ms/img vs it':>12}")  # fmt: skip
    for batch, e2e, worker_pipeline, store, bare in rows:
        print(
            f"{batch:>5} {e2e:>7.2f} {worker_pipeline:>10.2f} "
            f"{(e2e - worker_pipeline) / n * 1000:>15.1f} "
            f"{100 * (e2e - worker_pipeline) / worker_pipeline:>8.1f}% {n / e2e:>9.1f} "
            f"{store / n * 1000:>19.1f} | {bare:>11.2f} {(e2e - bare) / n * 1000:>12.1f}"
        )
    if len(rows) >= 2:
        (b1, e1, p1, _, r1), (b2, e2, p2, _, r2) = rows[0], rows[-1]
        print(
            f"batch {b2} vs {b1}: end to end x{e1 / e2:.2f} images/s; pipeline in the worker "
            f"x{p1 / p2:.2f}; bare here x{r1 / r2:.2f}"
        )


if __name__ == "__main__":
    main()
