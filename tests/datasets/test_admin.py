"""The admin: a lead creates, freezes, exports, compares and downloads versions."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.datasets.factories import judge_bulk, version_frozen, world_build
from training_bridge.datasets.services.exports import dataset_export_run, dataset_exports_request
from training_bridge.models import Dataset, DatasetExport, DatasetVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    world = world_build(groups=3)
    judge_bulk(world, lambda pair: ["left", "left", "tie"])
    return world


@pytest.fixture
def lead_browser(lead) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def test_lead_adds_a_version_in_the_admin_through_the_services(lead_browser, world):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_browser.post(
        reverse("admin:training_bridge_datasetversion_add"),
        {
            "dataset": dataset.pk,
            "filter_spec": json.dumps({"queues": [world.queue.name]}),
            "split_spec": json.dumps({"seed": 4}),
        },
    )
    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert (version.number, version.status) == (1, "draft")
    assert version.filter_spec["queues"] == [world.queue.pk]
    assert version.split_spec["seed"] == 4


def test_admin_add_form_shows_the_spec_error_and_saves_nothing(lead_browser, world):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_browser.post(
        reverse("admin:training_bridge_datasetversion_add"),
        {
            "dataset": dataset.pk,
            "filter_spec": json.dumps({"queues": [world.queue.name], "min_agreement": 3}),
        },
    )
    assert response.status_code == 200
    assert "filter_spec.min_agreement: must be between 0 and 1, got 3" in response.content.decode()
    assert DatasetVersion.objects.count() == 0


def test_freeze_and_export_actions_call_the_services(
    lead_browser, world, django_capture_on_commit_callbacks
):
    dataset = Dataset.objects.create(name="spatial")
    draft = DatasetVersion.objects.create(
        dataset=dataset, number=1, filter_spec={"queues": [world.queue.pk]}
    )
    changelist = reverse("admin:training_bridge_datasetversion_changelist")
    with django_capture_on_commit_callbacks() as callbacks:
        response = lead_browser.post(
            changelist, {"action": "freeze_versions", "_selected_action": [draft.pk]}
        )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == "freezing"
    assert len(callbacks) == 1

    with django_capture_on_commit_callbacks() as callbacks:
        lead_browser.post(changelist, {"action": "export_all", "_selected_action": [draft.pk]})
    # Freezing: the exports wait and start when the freeze finishes.
    assert len(callbacks) == 0
    assert sorted(DatasetExport.objects.values_list("format", "status")) == [
        ("arena", "queued"),
        ("hps", "queued"),
        ("jsonl", "queued"),
        ("openrlhf", "queued"),
        ("parquet", "queued"),
        ("webdataset", "queued"),
    ]


def test_frozen_version_page_draws_the_composition_and_lists_downloads(lead_browser, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    for export in dataset_exports_request(version_id=version.pk, enqueue=False):
        dataset_export_run(export_id=export.pk)

    page = lead_browser.get(
        reverse("admin:training_bridge_datasetversion_change", args=[version.pk])
    ).content.decode()

    assert page.count('<div class="sp-chart">') == 7
    for title in ("By split", "By label", "By relation", "By perturbation type"):
        assert title in page
    assert "By confidence (majority)" in page
    assert "0.6-0.7: 12 (100.0%)" in page  # every record's votes are 2 to 1
    assert '<rect class="bar"' in page
    assert "a: 12 (100.0%)" in page  # every pair's label is a
    assert "swap: 9 (75.0%)" in page
    links = re.findall(r'href="(/api/dataset-versions/\d+/artifacts/[^"]+)"', page)
    assert f"/api/dataset-versions/{version.pk}/artifacts/manifest.json" in links
    assert f"/api/dataset-versions/{version.pk}/artifacts/jsonl/records.jsonl" in links
    assert any(link.endswith(".parquet") for link in links)
    assert any("/webdataset/" in link for link in links)
    assert any("/hps/images-00000.tar" in link for link in links)
    for link in links:
        assert lead_browser.get(link).status_code == 200, link
    assert 'http-equiv="refresh"' not in page


def test_a_running_export_shows_its_progress_and_refreshes_the_page(lead_browser, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    DatasetExport.objects.create(
        version=version, format="parquet", status="running", records_done=3, records_total=12
    )
    page = lead_browser.get(
        reverse("admin:training_bridge_datasetversion_change", args=[version.pk])
    ).content.decode()
    assert '<progress value="25" max="100"></progress> 3 / 12' in page
    assert 'http-equiv="refresh"' in page


def test_diff_page_lists_what_changed(lead_browser, world):
    first = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    second = version_frozen(
        dataset_name="spatial",
        filter_spec={"queues": [world.queue.pk], "pair_kinds": ["same_prompt"]},
    )
    response = lead_browser.post(
        reverse("admin:training_bridge_datasetversion_changelist"),
        {"action": "compare_two", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    page = lead_browser.get(response["Location"]).content.decode()
    assert "spatial v1 &rarr; v2" in page
    assert "<td>0</td><td>6</td><td>0</td>" in page


def test_a_frozen_version_cannot_be_deleted_in_the_admin(lead_browser, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    response = lead_browser.post(
        reverse("admin:training_bridge_datasetversion_delete", args=[version.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert DatasetVersion.objects.filter(pk=version.pk, status="frozen").exists()
