"""The training admin (start form, the versions' "train" link, cancel, the live page) and
`manage.py train`."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.services.annotators import user_create
from config.roles import Role
from tests.factories import DatasetVersionFactory, TrainingRunFactory
from training_bridge.models import DatasetExport, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml_admin(db) -> Client:
    client = Client()
    client.force_login(user_create(username="ml-admin", password="ml-pass-123", role=Role.ML))
    return client


@pytest.fixture
def frozen(db):
    version = DatasetVersionFactory(
        status="frozen", content_hash="h" * 64, frozen_at=timezone.now()
    )
    DatasetExport.objects.create(version=version, format="parquet", status="done")
    return version


def test_the_start_form_queues_a_run_and_opens_its_page(ml_admin, frozen):
    response = ml_admin.post(
        reverse("admin:training_bridge_trainingrun_add"),
        {"dataset_version": frozen.pk, "config": json.dumps({"epochs": 2, "head": "gaussian"})},
    )

    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:training_bridge_trainingrun_change", args=[run.pk]
    )
    assert (run.status, run.config["epochs"], run.config["head"]) == ("queued", 2, "gaussian")
    page = ml_admin.get(response["Location"]).content.decode()
    assert 'id="sp-training"' in page
    assert f'data-metrics-url="/api/training-runs/{run.pk}/metrics/"' in page
    assert "training_bridge/training_charts.js" in page
    assert "Cancel this run" in page


def test_the_start_form_shows_a_bad_config_and_starts_nothing(ml_admin, frozen):
    response = ml_admin.post(
        reverse("admin:training_bridge_trainingrun_add"),
        {"dataset_version": frozen.pk, "config": json.dumps({"backbone": "resnet"})},
    )

    assert response.status_code == 200
    assert "config.backbone: unknown value &#x27;resnet&#x27;" in response.content.decode()
    assert TrainingRun.objects.count() == 0


def test_the_start_form_offers_only_frozen_versions(ml_admin, frozen):
    draft = DatasetVersionFactory()

    response = ml_admin.post(
        reverse("admin:training_bridge_trainingrun_add"),
        {"dataset_version": draft.pk, "config": "{}"},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert TrainingRun.objects.count() == 0


def test_a_frozen_versions_train_link_opens_the_start_form_with_the_version(ml_admin, frozen):
    # given the versions list
    page = ml_admin.get(reverse("admin:training_bridge_datasetversion_changelist"))

    # when the ML engineer follows the frozen version's train link
    url = f"{reverse('admin:training_bridge_trainingrun_add')}?dataset_version={frozen.pk}"
    link = f'<a href="{url}">Train a reward model</a>'
    assert page.content.decode().count(link) == 1
    form = ml_admin.get(url).content.decode()

    # then the start form has the version chosen, and nothing started yet
    assert f'<option value="{frozen.pk}" selected>' in form
    assert TrainingRun.objects.count() == 0


def test_a_draft_version_has_no_train_link(ml_admin):
    draft = DatasetVersionFactory()

    page = ml_admin.get(reverse("admin:training_bridge_datasetversion_changelist"))

    text = page.content.decode()
    assert f"{draft}" in text
    assert "Train a reward model" not in text


def test_the_cancel_button_cancels_a_queued_run(ml_admin):
    run = TrainingRunFactory()

    response = ml_admin.post(reverse("admin:training_bridge_trainingrun_cancel", args=[run.pk]))

    run.refresh_from_db()
    assert response.status_code == 302
    assert run.status == "cancelled"


def test_a_failed_run_page_shows_its_error_and_log_tail(ml_admin):
    run = TrainingRunFactory(
        status="failed", finished_at=timezone.now(), error="the trainer exited with status 7: OOM",
        log_tail="step 10\nRuntimeError: OOM\n",
    )  # fmt: skip

    page = ml_admin.get(reverse("admin:training_bridge_trainingrun_change", args=[run.pk]))

    text = page.content.decode()
    assert "the trainer exited with status 7: OOM" in text
    assert "RuntimeError: OOM" in text
    assert "Cancel this run" not in text


def test_a_lead_sees_runs_but_gets_no_start_form():
    lead = Client()
    lead.force_login(user_create(username="lead-a", password="lead-pass-1", role=Role.LEAD))
    run = TrainingRunFactory()

    assert lead.get(reverse("admin:training_bridge_trainingrun_changelist")).status_code == 200
    assert lead.get(reverse("admin:training_bridge_trainingrun_add")).status_code == 403
    page = lead.get(reverse("admin:training_bridge_trainingrun_change", args=[run.pk]))
    assert page.status_code == 200 and "Cancel this run" not in page.content.decode()


def test_the_command_starts_a_run_and_finds_it_again(frozen, capsys):
    call_command("train", "start", "--version-id", str(frozen.pk), "--set", "epochs=2")
    call_command(
        "train", "start", "--dataset", frozen.dataset.name, "--version", str(frozen.number),
        "--config", '{"epochs": 2}',
    )  # fmt: skip

    out = capsys.readouterr().out.splitlines()
    run = TrainingRun.objects.get()
    assert out == [
        f"run {run.pk} started: queued (attempt 1)",
        f"run {run.pk} exists: queued (attempt 1)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "backbone=resnet"], "config.backbone: unknown value 'resnet'"),
        (["--set", "backbone=clip", "--set", "model_path=/missing"],
         "config.model_path: no such folder"),
        (["--config", "{not json"], "config: malformed JSON"),
        (["--set", "epochs"], "--set: expected key=value"),
    ],
)  # fmt: skip
def test_the_command_refuses_a_bad_config_naming_the_field(frozen, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("train", "start", "--version-id", str(frozen.pk), *args)
    assert TrainingRun.objects.count() == 0


def test_the_command_refuses_a_version_that_is_not_frozen():
    draft = DatasetVersionFactory()

    with pytest.raises(CommandError, match="dataset_version: .* is draft"):
        call_command("train", "start", "--version-id", str(draft.pk))
    with pytest.raises(CommandError, match="dataset_version: give --version-id"):
        call_command("train", "start")


def test_the_command_cancels_and_reports_status(capsys):
    run = TrainingRunFactory(summary={"val/accuracy": 0.5})

    call_command("train", "cancel", str(run.pk))
    call_command("train", "status", str(run.pk), "--json")

    out = capsys.readouterr().out
    assert f"run {run.pk}: cancel requested" in out
    status = json.loads(out[out.index("{") :])
    assert (status["status"], status["summary"]) == ("cancelled", {"val/accuracy": 0.5})
    with pytest.raises(CommandError, match="nothing to cancel"):
        call_command("train", "cancel", str(run.pk))


def test_a_lead_sees_the_frozen_version_but_no_train_link(frozen):
    lead = Client()
    lead.force_login(user_create(username="lead-b", password="lead-pass-1", role=Role.LEAD))

    page = lead.get(reverse("admin:training_bridge_datasetversion_changelist"))

    text = page.content.decode()
    assert page.status_code == 200 and f"{frozen}" in text
    assert "Train a reward model" not in text
    assert TrainingRun.objects.count() == 0
