"""/metrics: who may read it, and the platform's own figures, read from a real scrape with the
real PostgreSQL and Redis (the suite's broker)."""

import os
import re
import subprocess
import sys
import uuid

import pytest
from django.test import Client
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from annotation.services.annotators import user_create
from annotation.services.assignment import pairs_next_for_annotator
from annotation.services.judgments import judgment_submit
from config.roles import Role
from generation_workers.metrics import images_recorded
from tests.factories import DatasetVersionFactory, TrainingRunFactory
from tests.labeling.factories import annotators, queue_with_pairs
from training_bridge.models import DatasetExport, TrainingRun

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_nobody_reads_metrics_without_the_token(token):
    # anonymous, a wrong token, and every role signed in with a session
    assert Client().get("/metrics").status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert Client().get("/metrics", headers=wrong).status_code == 403
    for role in (Role.ANNOTATOR, Role.LEAD, Role.ML):
        user = user_create(username=f"m-{role.value}", password="pass-123456", role=role)
        client = Client()
        client.force_login(user)
        assert client.get("/metrics").status_code == 403, role
    admin = user_create(username="m-admin", password="pass-123456", role=Role.ANNOTATOR)
    admin.is_superuser = admin.is_staff = True
    admin.save()
    client = Client()
    client.force_login(admin)
    assert client.get("/metrics").status_code == 403


def test_without_a_token_set_nobody_reads_metrics(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403


def test_requests_are_counted_by_django_prometheus(token):
    # by view: not the probes' and scrapes', answered before the per-view counter (config/probes.py)
    Client().get("/api/me/")
    samples = scrape()
    name = "django_http_requests_total_by_view_transport_method_total"
    views = {dict(labels).get("view") for sample, labels in samples if sample == name}
    assert "api:me" in views
    assert "api:health-live" not in views


def test_judgments_are_counted_once_each_and_replays_not(token):
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    items = pairs_next_for_annotator(queue_id=queue.pk, user=ann, count=1)
    before = scrape().get(("spatialprefs_judgments_total", ()), 0)
    sid = uuid.uuid4()
    for _ in range(2):  # the second is a replay of the first
        judgment_submit(
            user=ann, queue_id=queue.pk, pair_id=items[0].pair_id,
            client_submission_id=sid, choice="left",
        )  # fmt: skip
    assert scrape()[("spatialprefs_judgments_total", ())] == before + 1


def test_open_pairs_and_active_leases_per_queue(token):
    queue, pairs = queue_with_pairs(n_pairs=5)
    anns = annotators(2)
    pairs_next_for_annotator(queue_id=queue.pk, user=anns[0], count=2)
    samples = scrape()
    label = (("queue", queue.name),)
    assert samples[("spatialprefs_active_leases", label)] == 2
    # overlap 3: every pair still has a free slot, leased or not
    assert samples[("spatialprefs_open_pairs", label)] == 5


def test_celery_queue_lengths_come_from_the_broker(token, settings):
    name = "gpu"
    with Connection(settings.CELERY_BROKER_URL) as conn:
        queue = conn.SimpleQueue(name)
        queue.clear()
        try:
            queue.put({"probe": 1})
            queue.put({"probe": 2})
            samples = scrape()
        finally:
            queue.clear()
            queue.close()
    assert samples[("spatialprefs_celery_queue_length", (("queue", name),))] == 2


def test_images_are_counted_per_config_and_outcome(token):
    config = f"cfg-{uuid.uuid4().hex[:8]}"
    images_recorded(config=config, done=3, failed=1)
    samples = scrape()
    assert samples[("spatialprefs_images_total", (("config", config), ("outcome", "done")))] == 3
    assert samples[("spatialprefs_images_total", (("config", config), ("outcome", "failed")))] == 1


def test_running_exports_and_training_runs_report_progress(token):
    version = DatasetVersionFactory()
    export = DatasetExport.objects.create(
        version=version, format="jsonl", status="running", records_done=40, records_total=100
    )
    run = TrainingRunFactory(dataset_version=version, status=TrainingRun.Status.RUNNING)
    TrainingRun.objects.filter(pk=run.pk).update(step=7, total_steps=70)
    samples = scrape()
    labels = (("export", str(export.pk)), ("format", "jsonl"))
    assert samples[("spatialprefs_export_records_done", labels)] == 40
    assert samples[("spatialprefs_export_records_total", labels)] == 100
    assert samples[("spatialprefs_training_step", (("run", str(run.pk)),))] == 7
    assert samples[("spatialprefs_training_total_steps", (("run", str(run.pk)),))] == 70


def test_a_scrape_reads_no_judgment(token, django_assert_max_num_queries):
    # the collectors' statements are few and fixed, whatever the tables hold
    with django_assert_max_num_queries(6) as captured:
        scrape()
    assert not any(re.search(r"annotation_judgment", q["sql"]) for q in captured.captured_queries)


def test_with_a_multiprocess_folder_metrics_sums_every_process(token, tmp_path, monkeypatch):
    # two other processes (gunicorn workers, say) count images in the shared folder
    folder = tmp_path / "prometheus"
    folder.mkdir()
    code = (
        "import django; django.setup(); from generation_workers.metrics import images_recorded; "
        "images_recorded(config='shared', done=2, failed=0)"
    )
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    environment.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=environment, check=True, timeout=120)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    samples = scrape()
    assert samples[("spatialprefs_images_total", (("config", "shared"), ("outcome", "done")))] == 4
