"""Request ids, JSON logs (LOG_FORMAT) and the optional Sentry (SENTRY_DSN)."""

import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from config.logs import JsonFormatter, RequestIdFilter
from config.sentry import sentry_init

ROOT = Path(__file__).resolve().parents[2]


def test_a_request_gets_an_id_in_its_response():
    response = Client().get("/api/health/live/")
    assert len(response["X-Request-ID"]) == 32
    assert response["X-Request-ID"] != Client().get("/api/health/live/")["X-Request-ID"]


def test_the_proxys_request_id_is_kept_and_a_malformed_one_replaced():
    sent = Client().get("/api/health/live/", headers={"X-Request-ID": "edge-7f3a.1_b"})
    assert sent["X-Request-ID"] == "edge-7f3a.1_b"
    for bad in ("has space", "x" * 129, 'quote"d', ""):
        got = Client().get("/api/health/live/", headers={"X-Request-ID": bad})["X-Request-ID"]
        assert got != bad and len(got) == 32


@pytest.mark.django_db
def test_log_lines_of_a_request_carry_its_id_as_json():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")  # Django's line for a 4xx answer
    logger.addHandler(handler)
    try:
        response = Client().get("/metrics", headers={"X-Request-ID": "req-1234"})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 403
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == "req-1234"
    assert entry["logger"] == "django.request"
    assert entry["level"] == "WARNING"
    assert "/metrics" in entry["message"]
    assert set(entry) == {"time", "level", "logger", "message", "request_id"}


def _django(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_log_format_json_writes_one_object_per_line_and_text_stays_readable():
    code = "import logging; logging.getLogger('spatialprefs.test').warning('hello %s', 'world')"
    done = _django(code, LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert entry["message"] == "hello world"
    assert entry["logger"] == "spatialprefs.test"
    assert entry["request_id"] == "-"

    plain = _django(code, LOG_FORMAT="text")
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.strip().endswith("WARNING spatialprefs.test hello world")


def test_an_unknown_log_format_stops_the_start_naming_it():
    done = _django("pass", LOG_FORMAT="yaml")
    assert done.returncode != 0
    assert "LOG_FORMAT must be text or json, not 'yaml'" in done.stderr


def test_sentry_is_off_without_a_dsn():
    assert sentry_init("") is False


@pytest.mark.skipif(
    importlib.util.find_spec("sentry_sdk") is not None, reason="sentry-sdk is installed here"
)
def test_a_dsn_without_sentry_sdk_stops_the_start_saying_what_to_do():
    with pytest.raises(ImproperlyConfigured, match="sentry-sdk package is not installed"):
        sentry_init("https://public@sentry.example/1")
    done = _django("pass", SENTRY_DSN="https://public@sentry.example/1")
    assert done.returncode != 0
    assert "SENTRY_DSN is set but the sentry-sdk package is not installed" in done.stderr
