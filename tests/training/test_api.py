"""The training API: start (ML engineers), list, detail, cancel, metric points, downloads."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import DatasetVersionFactory, TrainingRunFactory
from training_bridge.datasets.services.artifacts import artifact_put_bytes
from training_bridge.models import TrainingMetric, TrainingRun

pytestmark = pytest.mark.django_db
RUNS = "/api/training-runs/"


@pytest.fixture
def frozen(db):
    return DatasetVersionFactory(status="frozen", content_hash="h" * 64, frozen_at=timezone.now())


@pytest.fixture
def exported(frozen):
    from training_bridge.models import DatasetExport

    DatasetExport.objects.create(
        version=frozen, format="parquet", include_images=True, status="done"
    )
    return frozen


def test_an_ml_engineer_starts_a_run_and_starting_it_again_returns_it(ml_client, exported):
    body = {"dataset_version": exported.pk, "config": {"epochs": 3, "head": "gaussian"}}

    first = ml_client.post(RUNS, body, format="json")
    again = ml_client.post(RUNS, body, format="json")
    forced = ml_client.post(RUNS, {**body, "force": True}, format="json")

    assert (first.status_code, again.status_code, forced.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (forced.json()["attempt"], first.json()["attempt"]) == (2, 1)
    data = first.json()
    assert (data["status"], data["launcher"]) == ("queued", "builtin")
    assert (data["dataset"], data["version_number"]) == (exported.dataset.name, exported.number)
    assert data["config"]["head"] == "gaussian" and data["config"]["epochs"] == 3
    assert data["metrics_url"] == f"/api/training-runs/{data['id']}/metrics/"
    assert TrainingRun.objects.count() == 2


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"backbone": "vit-huge"}, "config.backbone"),
        ({"backbone": "clip", "model_path": "/nowhere/clip"}, "config.model_path"),
        ({"launcher": "external", "command": "run {nope}"}, "config.command"),
        ({"launcher": "no-such-launcher"}, "config.launcher"),
    ],
)
def test_a_bad_config_is_a_400_naming_the_field(ml_client, exported, config, field):
    response = ml_client.post(
        RUNS, {"dataset_version": exported.pk, "config": config}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert TrainingRun.objects.count() == 0


def test_a_version_that_is_not_frozen_is_a_400_naming_it(ml_client):
    draft = DatasetVersionFactory()

    response = ml_client.post(RUNS, {"dataset_version": draft.pk, "config": {}}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": f"{draft} is draft: only a frozen version can be trained on",
        "field": "dataset_version",
    }
    assert TrainingRun.objects.count() == 0


def test_a_missing_dataset_version_in_the_body_is_a_400(ml_client):
    response = ml_client.post(RUNS, {"config": {}}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "dataset_version"


def test_leads_read_runs_but_cannot_start_or_cancel_them(lead_client, exported):
    run = TrainingRunFactory(dataset_version=exported)

    assert lead_client.get(RUNS).status_code == 200
    assert lead_client.get(f"{RUNS}{run.pk}/").status_code == 200
    started = lead_client.post(RUNS, {"dataset_version": exported.pk, "config": {}}, format="json")
    cancelled = lead_client.post(f"{RUNS}{run.pk}/cancel/")

    assert (started.status_code, cancelled.status_code) == (403, 403)
    run.refresh_from_db()
    assert run.status == "queued" and TrainingRun.objects.count() == 1


def test_annotators_reach_no_training_endpoint(annotator_client):
    run = TrainingRunFactory()

    assert annotator_client.get(RUNS).status_code == 403
    assert annotator_client.get(f"{RUNS}{run.pk}/metrics/").status_code == 403


def test_the_list_filters_by_version_and_status(ml_client):
    a = TrainingRunFactory(status="failed", finished_at=timezone.now())
    b = TrainingRunFactory()

    by_version = ml_client.get(RUNS, {"dataset_version": a.dataset_version_id}).json()
    by_status = ml_client.get(RUNS, {"status": "queued"}).json()
    bad = ml_client.get(RUNS, {"status": "exploded"})

    assert [r["id"] for r in by_version] == [a.pk]
    assert [r["id"] for r in by_status] == [b.pk]
    assert (bad.status_code, bad.json()["field"]) == (400, "status")


def test_cancel_through_the_api(ml_client):
    queued = TrainingRunFactory()
    done = TrainingRunFactory(status="succeeded", finished_at=timezone.now())

    response = ml_client.post(f"{RUNS}{queued.pk}/cancel/")
    conflict = ml_client.post(f"{RUNS}{done.pk}/cancel/")
    missing = ml_client.post(f"{RUNS}999999/cancel/")

    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    assert (conflict.status_code, conflict.json()["field"]) == (409, "status")
    assert missing.status_code == 404


def test_the_metrics_endpoint_returns_the_points_after_the_last_one_seen(ml_client):
    run = TrainingRunFactory(status="running", step=2, total_steps=10, epoch=1)
    points = [
        TrainingMetric.objects.create(run=run, name="train/loss", step=s, epoch=1, value=1 / s)
        for s in (1, 2)
    ]

    first = ml_client.get(f"{RUNS}{run.pk}/metrics/").json()
    TrainingMetric.objects.create(run=run, name="val/accuracy", step=2, epoch=1, value=0.75)
    second = ml_client.get(f"{RUNS}{run.pk}/metrics/", {"after": first["last_id"]}).json()
    nothing = ml_client.get(f"{RUNS}{run.pk}/metrics/", {"after": second["last_id"]}).json()

    assert [p["id"] for p in first["points"]] == [p.pk for p in points]
    assert first["run"]["status"] == "running"
    assert (first["run"]["step"], first["run"]["total_steps"], first["run"]["epoch"]) == (2, 10, 1)
    assert [(p["name"], p["value"]) for p in second["points"]] == [("val/accuracy", 0.75)]
    assert (nothing["points"], nothing["last_id"]) == ([], second["last_id"])


def test_a_listed_artifact_downloads_and_an_unlisted_one_is_a_404(ml_client):
    stored = artifact_put_bytes(key="training/runs/77/summary.json", data=b'{"ok": 1}')
    run = TrainingRunFactory(
        status="succeeded",
        finished_at=timezone.now(),
        artifacts=[{"name": "summary.json", **stored}],
    )

    response = ml_client.get(f"{RUNS}{run.pk}/artifacts/summary.json")
    unlisted = ml_client.get(f"{RUNS}{run.pk}/artifacts/../../secrets.txt")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b'{"ok": 1}'
    assert unlisted.status_code == 404
    detail = ml_client.get(f"{RUNS}{run.pk}/").json()
    assert detail["artifacts"] == [
        {**stored, "name": "summary.json",
         "download_url": reverse("api:training:training-run-artifact",
                                 kwargs={"run_id": run.pk, "name": "summary.json"})}
    ]  # fmt: skip
