"""deploy/grafana/spatialprefs.json: every metric its queries use is one /metrics serves."""

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from generation_workers.metrics import images_recorded

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "spatialprefs.json"
METRIC = re.compile(r"\b((?:spatialprefs|django)_[a-zA-Z0-9_]+)")
TOKEN = "metrics-token-for-tests-0123456789"

pytestmark = pytest.mark.django_db


def served_series(text: str) -> set[str]:
    """The series names a scrape can hold, from its `# TYPE` lines."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def test_every_metric_the_dashboard_queries_is_served(settings):
    settings.METRICS_TOKEN = TOKEN
    Client().get("/api/health/live/")  # a request, so that the request histograms have a view
    # a batch recorded, as a generation worker does (its exporter serves the same registry)
    images_recorded(config="dashboard-check", done=1, failed=1)
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    served = served_series(response.content.decode())

    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in METRIC.findall(target["expr"])
    }

    assert len(used) >= 12  # the dashboard has something to check
    assert sorted(used - served) == []
