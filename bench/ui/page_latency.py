"""How long an annotator waits between pairs on the labeling page, with and without prefetch.

    .venv/bin/python bench/ui/page_latency.py --pairs 40 --latency-ms 100

Creates (dropping it first) the PostgreSQL database --db, migrates it, makes one queue per
--prefetch value with --pairs pairs of procedural-renderer images (tests/ui/factories.py),
serves the app with gunicorn (as `make demo` does: 2 workers x 4 threads) and drives Debian's
Chromium through Playwright, with the network slowed to --latency-ms per request (Chrome's
network emulation) like an annotator far from the server. The annotator answers each pair
with a key as soon as it takes input, plus --think-ms.

Per pair it measures, in the page, the time from the key press to the next pair on screen
with both its images decoded and painted (a requestAnimationFrame after the images'
decode()). Prints one row per prefetch value: median, p95 and max of that wait, and how many
pairs appeared before their images had arrived. The database is dropped at the end.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "bench-annotator-pass"
# Recorded in the page: key press -> next pair shown with its images decoded, then painted.
INSTRUMENT = """() => {
  window.__waits = [];
  let pressed = null;
  document.addEventListener('keydown', () => { pressed = performance.now(); }, true);
  const app = document.getElementById('label-app');
  new MutationObserver(() => {
    if (!app.dataset.pair || pressed === null) return;
    const t0 = pressed;
    pressed = null;
    const imgs = [...document.querySelectorAll('#pair img')];
    const arrived = imgs.every(i => i.complete && i.naturalWidth > 0);
    Promise.all(imgs.map(i => i.decode().catch(() => null))).then(() =>
      requestAnimationFrame(() => window.__waits.push({ms: performance.now() - t0, arrived})));
  }).observe(app, {attributes: true, attributeFilter: ['data-pair']});
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate(base: str, db: str, *, create: bool = True) -> None:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{db}"')


def build(prefetches: list[int], pairs: int) -> dict[int, int]:
    """Migrate, make the annotator and one queue per prefetch value; returns queue ids."""
    import django

    django.setup()
    from django.core.management import call_command

    from annotation.services.annotators import user_create
    from config.roles import Role
    from tests.ui.factories import ui_queue

    call_command("migrate", verbosity=0)
    user_create(username="bench-annotator", password=PASSWORD, role=Role.ANNOTATOR)
    return {
        p: ui_queue(n_pairs=pairs, name=f"bench-prefetch-{p}", prefetch=p, overlap=1)[0].pk
        for p in prefetches
    }


def serve(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def label_queue(browser, url: str, queue_id: int, pairs: int, latency_ms: int, think_ms: int):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", "bench-annotator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": latency_ms,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    page.goto(f"{url}/label/{queue_id}/")
    page.evaluate(INSTRUMENT)
    ready = """() => { const a = document.getElementById('label-app');
        return a.dataset.state === 'labeling' && a.dataset.ready === 'true'; }"""
    for _ in range(pairs - 1):  # the last answer has no next pair to wait for
        page.wait_for_function(ready)
        page.wait_for_timeout(think_ms)
        done = page.evaluate("window.__waits.length")
        page.keyboard.press("1")
        page.wait_for_function("n => window.__waits.length === n", arg=done + 1)
    waits = page.evaluate("window.__waits")
    page.wait_for_function("() => document.getElementById('outbox-status').dataset.waiting === '0'")
    context.close()
    return waits


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--prefetch", type=int, nargs="+", default=[3, 1])
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--think-ms", type=int, default=300)
    parser.add_argument("--db", default="sp_bench_ui")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    media = tempfile.mkdtemp(prefix="bench-ui-media-")
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "STORAGE_BACKEND": "local",
        "MEDIA_ROOT": media,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    recreate(args.pg, args.db)
    server = None
    try:
        queues = build(args.prefetch, args.pairs)
        port = free_port()
        server = serve(env, port)
        from playwright.sync_api import sync_playwright

        rows = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            for prefetch, queue_id in queues.items():
                waits = label_queue(
                    browser,
                    f"http://127.0.0.1:{port}",
                    queue_id,
                    args.pairs,
                    args.latency_ms,
                    args.think_ms,
                )
                ms = [w["ms"] for w in waits]
                late = sum(1 for w in waits if not w["arrived"])
                rows.append(
                    (prefetch, len(ms), statistics.median(ms), percentile(ms, 0.95), max(ms), late)
                )
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        recreate(args.pg, args.db, create=False)
    print(
        f"key press -> next pair on screen, images painted "
        f"(network latency {args.latency_ms} ms, think time {args.think_ms} ms)"
    )
    header = ("prefetch", "pairs", "p50 ms", "p95 ms", "max ms", "images late")
    print(" ".join(f"{h:>{12 if h == 'images late' else 8}}" for h in header))
    for prefetch, n, p50, p95, worst, late in rows:
        print(f"{prefetch:>8} {n:>8} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f} {late:>12}")


if __name__ == "__main__":
    main()
