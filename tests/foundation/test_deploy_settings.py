"""Deployment defaults: no start on a public key, and what `manage.py check --deploy` says.

Each case runs manage.py in a fresh process, as an operator would: settings are read once at
start-up, so an in-process override could not show a refusal to start.
"""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The variables these tests set themselves, and the test run's own async switch
# (tests/conftest.py), which check --deploy rightly refuses: the caller's values are left out.
OWN = {
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "SECRET_KEY",
    "DJANGO_DEBUG",
    "ALLOWED_HOSTS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
}
PRODUCTION_TLS = {
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
}
# What check --deploy reports without the TLS variables: HSTS, SSL redirect and the two secure
# cookies, which a TLS-terminating proxy in front of the app makes safe to leave off
# (docs/operations.md explains each one).
DOCUMENTED_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in OWN}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def strong_key() -> str:
    return secrets.token_urlsafe(50)


def reported_ids(done: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"^\S*: \(([\w.]+)\) ", done.stdout + done.stderr, re.MULTILINE))


def test_without_a_secret_key_and_debug_off_manage_py_refuses_to_start_naming_the_variable():
    # Given DJANGO_DEBUG=0 and no SECRET_KEY, when any command starts
    done = manage("check", DJANGO_DEBUG="0")
    # Then it stops with a message that names the variable and says how to make a key
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set.")
    assert "get_random_secret_key" in last
    assert "System check" not in done.stdout


def test_an_empty_secret_key_is_refused_like_a_missing_one():
    done = manage("check", SECRET_KEY="")
    assert done.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY is not set." in done.stderr


def test_with_a_secret_key_manage_py_starts():
    done = manage("check", DJANGO_DEBUG="0", SECRET_KEY=strong_key())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."


def test_debug_mode_may_run_on_the_development_key():
    done = manage("check", DJANGO_DEBUG="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."


def test_check_deploy_with_the_production_variables_reports_no_issue():
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        SECRET_KEY=strong_key(),
        ALLOWED_HOSTS="labels.example.com",
        **PRODUCTION_TLS,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."


def test_check_deploy_with_only_the_minimal_variables_reports_exactly_the_documented_warnings():
    # Given a production process without the TLS variables (TLS ends at a proxy in front)
    done = manage(
        "check",
        "--deploy",
        DJANGO_DEBUG="0",
        SECRET_KEY=strong_key(),
        ALLOWED_HOSTS="labels.example.com",
    )
    # Then check --deploy reports those four warnings and nothing else
    assert done.returncode == 0, done.stderr[-2000:]
    assert reported_ids(done) == DOCUMENTED_WARNINGS
    assert "System check identified 4 issues (0 silenced)." in done.stdout + done.stderr
    # And the operations guide explains each of them
    operations = (REPO / "docs" / "operations.md").read_text()
    for warning in sorted(DOCUMENTED_WARNINGS):
        assert warning.removeprefix("security.") in operations, warning
