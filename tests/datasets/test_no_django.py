"""The dataset maths (`training_bridge.datasets.aggregation`) and the exporters import no Django
and no Celery: a process that imports every module of both has neither loaded. Nor has it
loaded crowd-kit and what it brings (pandas, scipy, scikit-learn): the label models import it
when they fit, so the web process never carries it."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import training_bridge.datasets.aggregation
import training_bridge.datasets.exporters

ROOT = Path(__file__).resolve().parents[2]


def _modules(package) -> list[str]:
    return [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg
    ]


def test_aggregation_and_exporters_load_without_django_or_celery():
    modules = _modules(training_bridge.datasets.aggregation) + _modules(
        training_bridge.datasets.exporters
    )
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},  # no DJANGO_SETTINGS_MODULE either
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "training_bridge.datasets.exporters.parquet" in modules
    assert "training_bridge.datasets.aggregation.specs" in modules
    assert "training_bridge.datasets.aggregation.label_models" in modules
    assert {"django", "celery", "config", "kombu"} & loaded == set()
    assert {"crowdkit", "pandas", "scipy", "sklearn"} & loaded == set()
