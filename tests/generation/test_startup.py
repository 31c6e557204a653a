"""The web process never imports torch or diffusers."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_django_starts_and_loads_the_generation_tasks_without_torch():
    code = (
        "import django, sys; django.setup(); "
        "import generation_workers.tasks, generation_workers.admin, config.urls; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": os.environ["SECRET_KEY"],  # settings refuse to start without one
        },
    )
    assert out.stdout.strip() == "[]"
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "System check identified no issues" in imported.stdout
    assert " torch" not in imported.stderr
    assert "diffusers" not in imported.stderr
