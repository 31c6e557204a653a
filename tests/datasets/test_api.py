"""The dataset API: create, freeze, export, progress, diff and download; 4xx naming the field."""

import hashlib

import pytest

from tests.datasets.factories import judge_bulk, version_frozen, world_build
from training_bridge.datasets.services.exports import dataset_export_run
from training_bridge.models import Dataset, DatasetExport, DatasetVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    world = world_build(groups=2)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    return world


def test_lead_creates_a_dataset_and_a_version_and_queues_its_freeze(
    lead_client, world, django_capture_on_commit_callbacks
):
    created = lead_client.post("/api/datasets/", {"name": "spatial"}, format="json")
    assert created.status_code == 201
    dataset_id = created.json()["id"]
    with django_capture_on_commit_callbacks() as callbacks:
        response = lead_client.post(
            f"/api/datasets/{dataset_id}/versions/",
            {"filter_spec": {"queues": [world.queue.name], "min_judgments": 3}, "freeze": True},
            format="json",
        )
    assert response.status_code == 202
    body = response.json()
    assert (body["dataset"], body["number"], body["status"]) == ("spatial", 1, "freezing")
    assert body["filter_spec"]["queues"] == [world.queue.pk]
    assert body["filter_spec"]["min_judgments"] == 3
    assert body["split_spec"]["ratios"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert len(callbacks) == 1
    listed = lead_client.get(f"/api/datasets/{dataset_id}/versions/")
    assert [v["number"] for v in listed.json()] == [1]


def test_malformed_spec_is_a_400_naming_the_key_and_saves_nothing(lead_client, world):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_client.post(
        f"/api/datasets/{dataset.pk}/versions/",
        {"filter_spec": {"queues": [world.queue.name], "min_agreement": 1.5}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": "must be between 0 and 1, got 1.5",
        "field": "filter_spec.min_agreement",
    }
    assert DatasetVersion.objects.count() == 0


@pytest.mark.parametrize(
    ("extra", "field", "detail"),
    [
        (
            {"aggregator": "median"},
            "filter_spec.aggregator",
            "unknown aggregator 'median'; choose from bradley_terry, dawid_skene, glad, "
            "majority, noisy_bt, trust_weighted",
        ),
        (
            {"aggregator": "dawid_skene", "aggregator_options": {"n_iter": -1}},
            "filter_spec.aggregator_options.n_iter",
            "must be from 1 to 10000, got -1",
        ),
        (
            {"aggregator": "glad", "aggregator_options": {"prior": 2}},
            "filter_spec.aggregator_options.prior",
            "unknown option for glad; known: tie_rule, n_iter, tol",
        ),
        (
            {"criterion": "overall"},
            "filter_spec.criterion",
            "queue '{queue}' asks no criterion 'overall' (it asks: (only the default question))",
        ),
    ],
)
def test_a_bad_aggregator_option_or_criterion_is_a_400_naming_the_key_and_saves_nothing(
    lead_client, world, extra, field, detail
):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_client.post(
        f"/api/datasets/{dataset.pk}/versions/",
        {"filter_spec": {"queues": [world.queue.name], **extra}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": detail.format(queue=world.queue.name),
        "field": field,
    }
    assert DatasetVersion.objects.count() == 0


def test_a_version_with_a_label_model_stores_its_options_spelled_out(lead_client, world):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_client.post(
        f"/api/datasets/{dataset.pk}/versions/",
        {
            "filter_spec": {
                "queues": [world.queue.name],
                "aggregator": "noisy_bt",
                "aggregator_options": {"n_iter": 50},
                "min_confidence": 0.6,
            }
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["aggregator"] == "noisy_bt"
    assert body["filter_spec"]["aggregator_options"] == {
        "n_iter": 50,
        "regularization_ratio": 1e-5,
        "tie_rule": "tie",
        "tol": 1e-5,
    }
    assert body["filter_spec"]["min_confidence"] == 0.6


def test_empty_selection_is_a_400_naming_the_key_and_saves_nothing(lead_client, world):
    dataset = Dataset.objects.create(name="spatial")
    response = lead_client.post(
        f"/api/datasets/{dataset.pk}/versions/",
        {"filter_spec": {"queues": [world.queue.name], "min_judgments": 5}, "freeze": True},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "filter_spec.min_judgments"
    assert body["detail"].startswith("the selection is empty: 8 pairs match")
    assert DatasetVersion.objects.count() == 0


def test_a_duplicate_dataset_name_is_a_400_naming_the_name(lead_client):
    Dataset.objects.create(name="spatial")
    response = lead_client.post("/api/datasets/", {"name": "spatial"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    assert Dataset.objects.count() == 1


def test_exports_are_queued_for_a_frozen_version_and_report_progress(
    lead_client, world, django_capture_on_commit_callbacks
):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    with django_capture_on_commit_callbacks() as callbacks:
        response = lead_client.post(
            f"/api/dataset-versions/{version.pk}/exports/",
            {"format": "all", "include_images": True},
            format="json",
        )
    assert response.status_code == 202
    assert [(e["format"], e["include_images"], e["status"]) for e in response.json()] == [
        ("jsonl", False, "queued"),
        ("parquet", True, "queued"),
        ("hps", True, "queued"),
        ("webdataset", True, "queued"),
        ("openrlhf", True, "queued"),
        ("arena", True, "queued"),
    ]
    assert len(callbacks) == 6
    export = DatasetExport.objects.get(version=version, format="parquet")
    dataset_export_run(export_id=export.pk)
    detail = lead_client.get(f"/api/dataset-exports/{export.pk}/").json()
    assert (detail["status"], detail["progress"], detail["records_done"]) == ("done", 1.0, 8)
    file = detail["files"][0]
    assert file["download_url"] == (f"/api/dataset-versions/{version.pk}/artifacts/{file['name']}")
    downloaded = lead_client.get(file["download_url"])
    assert downloaded.status_code == 200
    data = b"".join(downloaded.streaming_content)
    assert hashlib.sha256(data).hexdigest() == file["sha256"]
    version_body = lead_client.get(f"/api/dataset-versions/{version.pk}/").json()
    assert version_body["content_hash"] == version.content_hash
    assert {e["format"] for e in version_body["exports"]} == {
        "jsonl",
        "parquet",
        "hps",
        "webdataset",
        "openrlhf",
        "arena",
    }


def test_an_unknown_format_is_a_400_naming_format(lead_client, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    response = lead_client.post(
        f"/api/dataset-versions/{version.pk}/exports/", {"format": "csv"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "format"
    assert DatasetExport.objects.count() == 0
    response = lead_client.post(
        f"/api/dataset-versions/{version.pk}/exports/", {"format": "openrlhf "}, format="json"
    )
    assert (response.status_code, response.json()["field"]) == (400, "format")
    assert DatasetExport.objects.count() == 0


def test_exporting_a_draft_is_a_409(lead_client, world):
    dataset = Dataset.objects.create(name="spatial")
    draft = lead_client.post(
        f"/api/datasets/{dataset.pk}/versions/",
        {"filter_spec": {"queues": [world.queue.pk]}},
        format="json",
    ).json()
    assert draft["status"] == "draft"
    response = lead_client.post(
        f"/api/dataset-versions/{draft['id']}/exports/", {"format": "jsonl"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["field"] == "version"
    assert DatasetExport.objects.count() == 0


def test_freezing_a_frozen_version_is_a_409(lead_client, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    response = lead_client.post(f"/api/dataset-versions/{version.pk}/freeze/")
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "spatial v1 is frozen already",
        "field": "version",
    }


def test_diff_endpoint_compares_two_frozen_versions(ml_client, world):
    first = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    second = version_frozen(
        dataset_name="spatial",
        filter_spec={"queues": [world.queue.pk], "pair_kinds": ["counterfactual"]},
    )
    response = ml_client.get(f"/api/dataset-versions/{first.pk}/diff/?other={second.pk}")
    assert response.status_code == 200
    body = response.json()
    same_prompt = sorted(p.pk for p in world.pairs if p.kind == "same_prompt")
    assert body["counts"] == {
        "added": 0,
        "removed": 4,
        "relabelled": 0,
        "resplit": 0,
        "unchanged": 4,
    }
    assert body["removed"] == same_prompt
    bad = ml_client.get(f"/api/dataset-versions/{first.pk}/diff/?other=abc")
    assert bad.status_code == 400
    assert bad.json()["field"] == "other"


def test_only_listed_artifacts_download(lead_client, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    response = lead_client.get(
        f"/api/dataset-versions/{version.pk}/artifacts/../../candidates/x.png"
    )
    assert response.status_code == 404
    missing = lead_client.get(f"/api/dataset-versions/{version.pk}/artifacts/jsonl/records.jsonl")
    assert missing.status_code == 404
    assert missing.json()["field"] == "name"


def test_annotators_reach_no_dataset_endpoint(annotator_client, world):
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    for method, url in [
        ("get", "/api/datasets/"),
        ("post", "/api/datasets/"),
        ("get", f"/api/dataset-versions/{version.pk}/"),
        ("post", f"/api/dataset-versions/{version.pk}/exports/"),
        ("get", f"/api/dataset-versions/{version.pk}/artifacts/manifest.json"),
    ]:
        assert getattr(annotator_client, method)(url).status_code == 403, url
    assert Dataset.objects.count() == 1
