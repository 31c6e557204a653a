"""deploy/Procfile's web command (gunicorn with config/gunicorn.py) in multiprocess mode: /metrics
sums the requests of every worker, those that exited included, and nothing of an earlier run."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import VENV_BIN, _free_port, database_url_of_test
from tests.deploy.procfile import procfile_commands

TOKEN = "gunicorn-metrics-token-0123456789"


def _web_command(port: int) -> list[str]:
    """The Procfile's web command on a free local port with 2 workers, each of which exits after
    one request (gunicorn starts another): every request is answered by a different process."""
    words = procfile_commands()["web"]
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    words[words.index("--workers") + 1] = "2"
    return [str(VENV_BIN / words[0]), *words[1:], "--max-requests", "1"]


def _get(url: str, timeout: float = 10, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


@pytest.fixture
def gunicorn_web(db, tmp_path) -> Iterator[str]:
    """The base URL of the web command, its multiprocess folder holding an earlier run's
    count of 5 judgments."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    earlier = "from prometheus_client import Counter; Counter('spatialprefs_judgments', '').inc(5)"
    subprocess.run([sys.executable, "-c", earlier], env=environment, check=True, timeout=60)
    assert list(folder.glob("counter_*.db"))
    port = _free_port()
    environment |= {
        "DATABASE_URL": database_url_of_test(),
        "METRICS_TOKEN": TOKEN,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    server = subprocess.Popen(
        _web_command(port),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # a long timeout: a request that timed out here would still be answered later
                _get(f"{base}/api/health/live/", timeout=60)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "gunicorn did not answer in 30 s"
                time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown
        server.wait(timeout=30)


def test_metrics_sums_the_requests_of_every_worker_and_none_of_an_earlier_run(gunicorn_web):
    # given the liveness request that found the server up, answered by a worker that then exited
    base = gunicorn_web
    # when another process answers the scrape
    status, text = _get(f"{base}/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    # then it counts that answer (not its own, still under way), and the earlier run's
    # judgments are gone
    assert samples[("django_http_responses_before_middlewares_total", ())] == 1
    assert samples[("spatialprefs_judgments_total", ())] == 0
