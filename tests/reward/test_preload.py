"""A serving process loads the promoted model when it starts (config/wsgi.py): gunicorn, run as
the Procfile runs it, reports the model loaded before any scoring request; a manage.py command
does not load (nor fetch) it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from accounts.services import api_token_create
from annotation.services.annotators import user_create
from config.roles import Role

ROOT = Path(__file__).resolve().parents[2]


def _env(settings, cache: Path) -> dict[str, str]:
    db = connection.settings_dict
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "REWARD_MODEL_CACHE_DIR": str(cache),
        "REWARD_SCORING_THREADS": "1",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_gunicorn_loads_the_promoted_model_before_any_request_and_manage_py_does_not(
    register, builtin_folders, settings, tmp_path
):
    # given a promoted model in the database and the storage, and an ML token
    model = register(builtin_folders(2), promote=True)
    token = api_token_create(user=user_create(username="rl-pre", password="pre-pass-1234",
                                              role=Role.ML)).key  # fmt: skip
    # when a manage.py command runs against them, nothing is fetched into its cache
    command_cache = tmp_path / "command-cache"
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=_env(settings, command_cache),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert not command_cache.exists() or not any(command_cache.iterdir())
    # when gunicorn starts as the Procfile starts it, and nothing but health is asked
    port = _free_port()
    server_cache = tmp_path / "server-cache"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env=_env(settings, server_cache), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(server.stdout), daemon=True)
    reader.start()
    try:
        health = None
        for _ in range(1200):  # until the process reports the model loaded (a guard, no timing)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/reward/flow-factory/health",
                headers={"Authorization": f"Token {token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    health = json.loads(response.read())
            except OSError:
                health = None
            if health and health["loaded"]:
                break
            threading.Event().wait(0.1)
        # then it reports the promoted model loaded, fetched into its cache, without a request
        served = {"id": model.pk, "name": "spatial-rm", "version": 1}
        assert health == {"status": "ok", "loaded": True, "model": served}
        assert any(server_cache.iterdir())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        reader.join(5)
    assert any("reward.preload.done" in line for line in log), "".join(log)[-2000:]
