"""Pair images through the proxy: streamed by gunicorn vs handed to nginx (X-Accel-Redirect).

    .venv/bin/python bench/proxy/images.py --db sp_bench_proxy

The shipped proxy (deploy/proxy/nginx.conf with internal-files.conf, made runnable by
tests/deploy/proxy_conf.py: loopback ports, a self-signed certificate) in front of gunicorn
(--workers x --threads) on a benchmark database (created and migrated if missing). One
annotator holds one pair per image size; its thumbnails are files of exactly --sizes KB (the
view only reads their bytes). For each storage (local files, moto's S3 server) and each mode
(STORAGE_ACCEL_REDIRECT empty: gunicorn streams; set: nginx sends), after a 2-second warm-up
per gunicorn: ApacheBench (`ab`, apt-get install apache2-utils) fetches each size over HTTPS
with keep-alive and --concurrency connections for --seconds: images/s, the CPU milliseconds
per image of gunicorn (master and workers), nginx and moto (/proc), and how long a gunicorn
thread was held per image (its access log's request time: until the last byte went to
nginx). Then --concurrency slow clients (--slow-rate bytes/s, an annotator on a thin link) read
the largest image at once: their time and the thread time per image. Every answer is checked
once for its exact length and for no ETag. Prints a table; writes bench/out/proxy-images.json.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "labeling"))

import psycopg  # noqa: E402
from run import children_of, free_port, machine_busy, proc_cpu_seconds  # noqa: E402

from tests.deploy.proxy_conf import nginx_command, proxy_conf_write  # noqa: E402

OUT = ROOT / "bench" / "out"
SECRET = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-proxy"
PREFIX = {"local": "/_media/", "s3": "/_store/"}


def database_ready(server: str, db: str, env: dict) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def images_leased(sizes_kb: list[int], media: Path) -> tuple[dict[int, str], dict, dict]:
    """One pair per size leased to a fresh annotator, whose left thumbnail is a file of that
    size under `media`: ({size: image URL}, session cookie, {storage key: bytes})."""
    import django

    django.setup()
    import factory
    from django.conf import settings
    from django.test import Client

    from annotation.models import ImageThumbnail
    from generation_workers.models import Candidate
    from tests import factories
    from tests.labeling.factories import annotators, queue_with_pairs

    # The factories' names count from 0 in every process: start this run's further on.
    offset = int(time.time() * 1000) % 10**9
    for value in vars(factories).values():
        if isinstance(value, type) and issubclass(value, factory.Factory) and value._meta.model:
            value.reset_sequence(offset)
    run = uuid.uuid4().hex[:8]
    queue, pairs = queue_with_pairs(n_pairs=len(sizes_kb), name=f"bench-proxy-{run}")
    (ann,) = annotators(1, prefix=f"bench-proxy-{run}-")
    files = {}
    for pair, size in zip(pairs, sizes_kb, strict=True):
        for candidate in (pair.candidate_a, pair.candidate_b):
            sha = (uuid.uuid4().hex * 2)[:64]
            Candidate.objects.filter(pk=candidate.pk).update(content_sha256=sha)
            key = f"thumbs/{sha[:2]}/{sha}-768.webp"
            data = b"RIFF" + os.urandom(size * 1024 - 4)
            (media / key).parent.mkdir(parents=True, exist_ok=True)
            (media / key).write_bytes(data)
            files[key] = data
            ImageThumbnail.objects.create(content_sha256=sha, storage_key=key, width=1, height=1)
    client = Client()
    client.force_login(ann)
    answer = client.post(
        f"/api/labeling/queues/{queue.pk}/next/",
        {"count": len(pairs)},
        content_type="application/json",
        HTTP_HOST="localhost",
    )
    assert answer.status_code == 200, answer.content
    by_pair = {item["pair"]: item["left"]["url"] for item in answer.json()["items"]}
    urls = {size: by_pair[pair.pk] for pair, size in zip(pairs, sizes_kb, strict=True)}
    name = settings.SESSION_COOKIE_NAME
    return urls, {name: client.cookies[name].value}, files


def bucket_filled(endpoint: str, bucket: str, files: dict) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=bucket)
    for key, data in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/webp")


def tree_cpu(pid: int) -> float:
    return sum(proc_cpu_seconds(p) for p in [pid, *children_of(pid)])


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def ab(url: str, cookie: dict, *, seconds: float, concurrency: int) -> dict:
    ((name, value),) = cookie.items()
    out = subprocess.run(
        ["ab", "-q", "-k", "-t", str(seconds), "-n", "1000000", "-c", str(concurrency)]
        + ["-C", f"{name}={value}", "-H", "Accept: image/webp,*/*", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def number(label: str) -> float:
        return float(re.search(rf"{label}:\s+([\d.]+)", out).group(1))

    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return {
        "requests": int(number("Complete requests")),
        "failed": int(number("Failed requests")) + (int(non_2xx.group(1)) if non_2xx else 0),
        "seconds": number("Time taken for tests"),
    }


def request_seconds(access: Path) -> list[float]:
    """gunicorn's time per answered request (until its last byte was handed to nginx)."""
    if not access.exists():
        return []
    return [float(line.split()[1]) for line in access.read_text().splitlines() if line]


def slow_clients(url: str, cookie: dict, ca: str, *, n: int, rate: int) -> float:
    """n clients at once, each reading the image at `rate` bytes/s; mean seconds per client."""
    parts = urlsplit(url)
    ((name, value),) = cookie.items()

    def one(_: int) -> float:
        context = ssl.create_default_context(cafile=ca)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
        started = time.monotonic()
        conn.request("GET", parts.path, headers={"Cookie": f"{name}={value}"})
        answer = conn.getresponse()
        assert answer.status == 200, answer.status
        while chunk := answer.read(16384):
            time.sleep(len(chunk) / rate)
        conn.close()
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        times = list(pool.map(one, range(n)))
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sp_bench_proxy")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--sizes", default="64,512", help="image sizes in KB")
    parser.add_argument("--storages", default="local,s3")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--slow-rate", type=int, default=256 * 1024, help="slow clients' bytes/s")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    media = folder / "media"
    media.mkdir()
    env = {
        **os.environ,
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "MEDIA_ROOT": str(media),
        "ALLOWED_HOSTS": "localhost",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
    }
    database_ready(args.pg, args.db, env)
    os.environ.update(env)
    urls, cookie, files = images_leased(sizes, media)

    moto_port = free_port()
    moto = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [moto]
    results = []
    try:
        wait_port(moto_port, moto, "moto_server")
        endpoint = f"http://127.0.0.1:{moto_port}"
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        bucket_filled(endpoint, bucket, files)
        web_port, https_port = free_port(), free_port()
        (folder / "proxy").mkdir()
        conf = proxy_conf_write(
            folder / "proxy",
            web=f"127.0.0.1:{web_port}",
            store=f"127.0.0.1:{moto_port}",
            media=media,
            static=folder / "static",
            https_port=https_port,
            http_port=free_port(),
        )
        nginx = subprocess.Popen(
            nginx_command(folder / "proxy", conf),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(nginx)
        wait_port(https_port, nginx, "nginx")
        ca = str(folder / "proxy" / "certs" / "fullchain.pem")
        import requests

        for storage in args.storages.split(","):
            for mode in ("stream", "accel"):
                web_env = {
                    **env,
                    "STORAGE_ACCEL_REDIRECT": PREFIX[storage] if mode == "accel" else "",
                }
                if storage == "s3":
                    web_env.update(
                        STORAGE_BACKEND="s3",
                        S3_BUCKET=bucket,
                        S3_ENDPOINT_URL=endpoint,
                        AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench",
                    )
                access = folder / f"access-{storage}-{mode}.log"
                gunicorn = subprocess.Popen(
                    [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi"]
                    + ["--bind", f"127.0.0.1:{web_port}", "--workers", str(args.workers)]
                    + ["--threads", str(args.threads), "--log-level", "warning"]
                    + ["--access-logfile", str(access), "--access-logformat", "%(s)s %(L)s"],
                    cwd=ROOT,
                    env=web_env,
                    stdout=subprocess.DEVNULL,
                )
                try:
                    wait_port(web_port, gunicorn, "gunicorn")
                    for size in sizes:  # every worker thread imports and connects first
                        url = f"https://localhost:{https_port}{urls[size]}"
                        ab(url, cookie, seconds=2, concurrency=args.concurrency)
                    for size in sizes:
                        url = f"https://localhost:{https_port}{urls[size]}"
                        check = requests.get(url, cookies=cookie, verify=ca)
                        key = next(k for k, v in files.items() if len(v) == size * 1024)
                        assert check.status_code == 200, (storage, mode, check.status_code)
                        assert len(check.content) == size * 1024 and "ETag" not in check.headers
                        cpu0 = [tree_cpu(p.pid) for p in (gunicorn, nginx, moto)]
                        busy0, total0 = machine_busy()
                        logged = len(request_seconds(access))
                        run = ab(url, cookie, seconds=args.seconds, concurrency=args.concurrency)
                        busy1, total1 = machine_busy()
                        cpu1 = [tree_cpu(p.pid) for p in (gunicorn, nginx, moto)]
                        held = request_seconds(access)[logged:]
                        n = max(run["requests"], 1)
                        spent = zip(cpu0, cpu1, strict=True)
                        web, proxy, store = ((b - a) * 1000 / n for a, b in spent)
                        row = {
                            "storage": storage,
                            "mode": mode,
                            "size_kb": size,
                            "clients": f"ab -c {args.concurrency}",
                            "images_per_s": run["requests"] / run["seconds"],
                            "failed": run["failed"],
                            "web_cpu_ms_per_image": web,
                            "nginx_cpu_ms_per_image": proxy,
                            "moto_cpu_ms_per_image": store,
                            "web_thread_ms_per_image": 1000 * sum(held) / max(len(held), 1),
                            "machine_busy_pct": 100 * (busy1 - busy0) / (total1 - total0),
                            "key_in_answer": key in check.text or key in str(check.headers),
                        }
                        results.append(row)
                        print(
                            f"{storage:5} {mode:6} {size:4} KB  {row['images_per_s']:8.1f}/s  "
                            f"web {web:6.2f} ms/img CPU, thread held "
                            f"{row['web_thread_ms_per_image']:6.1f} ms  nginx {proxy:5.2f}  "
                            f"moto {store:6.2f}  failed {run['failed']}  "
                            f"machine {row['machine_busy_pct']:.0f}%",
                            flush=True,
                        )
                    # Annotators on slow links: each reads the largest image at --slow-rate.
                    url = f"https://localhost:{https_port}{urls[sizes[-1]]}"
                    logged = len(request_seconds(access))
                    slow = slow_clients(url, cookie, ca, n=args.concurrency, rate=args.slow_rate)
                    held = request_seconds(access)[logged:]
                    row = {
                        "storage": storage,
                        "mode": mode,
                        "size_kb": sizes[-1],
                        "clients": f"{args.concurrency} at {args.slow_rate} B/s",
                        "client_seconds": slow,
                        "web_thread_ms_per_image": 1000 * sum(held) / max(len(held), 1),
                    }
                    results.append(row)
                    print(
                        f"{storage:5} {mode:6} {sizes[-1]:4} KB  {args.concurrency} clients at "
                        f"{args.slow_rate} B/s: {slow:.2f} s each, web thread held "
                        f"{row['web_thread_ms_per_image']:6.1f} ms per image",
                        flush=True,
                    )
                finally:
                    gunicorn.terminate()
                    gunicorn.wait(timeout=30)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    report = {
        "args": vars(args),
        "load_average": os.getloadavg(),
        "nproc": os.cpu_count(),
        "results": results,
    }
    (OUT / "proxy-images.json").write_text(json.dumps(report, indent=2))
    print(f"load average {os.getloadavg()}; wrote {OUT / 'proxy-images.json'}")


if __name__ == "__main__":
    main()
