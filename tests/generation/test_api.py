"""The generation API: configs, campaigns, their actions and candidates, per role."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from generation_workers.models import Campaign, Candidate, GeneratorConfig
from generation_workers.services.configs import generator_config_create
from tests.generation.conftest import prompt_set_make

pytestmark = pytest.mark.django_db


def url(name, **kwargs):
    return reverse(f"api:generation:{name}", kwargs=kwargs)


@pytest.fixture
def config(own_queue):
    return generator_config_create(
        name="proc", backend="procedural", width=64, height=64, queue=own_queue
    )


def test_a_lead_creates_a_config_and_a_bad_one_is_a_400_naming_the_field(lead_client):
    created = lead_client.post(
        url("config-list"),
        {"name": "p", "backend": "procedural", "width": 128, "height": 128},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["check_status"] == "unchecked"
    assert (created.json()["width"], created.json()["backend"]) == (128, "procedural")

    refused = lead_client.post(
        url("config-list"),
        {"name": "sd", "backend": "diffusers", "model_path": "/nowhere"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid",
        "detail": "/nowhere does not exist on this machine",
        "field": "model_path",
    }
    unknown = lead_client.post(url("config-list"), {"name": "x", "speed": 3}, format="json")
    assert unknown.json()["field"] == "speed"
    assert GeneratorConfig.objects.count() == 1


def test_a_lead_updates_a_config_and_asks_for_its_check(lead_client, config, own_queue):
    patched = lead_client.patch(
        url("config", config_id=config.pk), {"batch_size": 8}, format="json"
    )
    assert (patched.status_code, patched.json()["batch_size"]) == (200, 8)
    checked = lead_client.post(url("config-check", config_id=config.pk))
    assert (checked.status_code, checked.json()["check_status"]) == (202, "checking")
    assert lead_client.get(url("config", config_id=999999)).status_code == 404


def test_a_lead_creates_and_launches_a_campaign_and_reads_its_progress(
    lead_client, config, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=2)
    body = {
        "name": "run-1", "prompt_set": prompt_set.pk, "configs": [config.pk],
        "seeds_per_prompt": 2, "launch": True,
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        created = lead_client.post(url("campaign-list"), body, format="json")
    assert created.status_code == 201
    data = created.json()
    assert (data["status"], data["total_items"], data["configs"]) == ("running", 8, [config.pk])
    assert data["progress"]["total"] == 8
    assert data["progress"]["pending"] == 8

    detail = lead_client.get(url("campaign", campaign_id=data["id"])).json()
    assert detail["progress"]["done"] == 0
    listed = lead_client.get(url("campaign-list")).json()
    assert [c["id"] for c in listed["results"]] == [data["id"]]
    candidates = lead_client.get(
        url("campaign-candidates", campaign_id=data["id"]), {"status": "pending"}
    )
    assert candidates.json()["count"] == 8
    assert candidates.json()["results"][0]["image_url"] is None

    cancelled = lead_client.post(url("campaign-cancel", campaign_id=data["id"]))
    assert cancelled.status_code == 200
    assert cancelled.json()["items"] == 8
    assert cancelled.json()["campaign"]["status"] == "cancelled"
    again = lead_client.post(url("campaign-cancel", campaign_id=data["id"]))
    assert again.status_code == 409
    assert again.json()["field"] == "status"


def test_a_bad_campaign_is_a_400_and_an_unknown_one_a_404(lead_client, config):
    prompt_set = prompt_set_make(originals=1)
    refused = lead_client.post(
        url("campaign-list"),
        {"name": "x", "prompt_set": prompt_set.pk, "configs": [config.pk],
         "prompt_filter": {"tiers": "one"}},
        format="json",
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["field"] == "prompt_filter.tiers"
    assert Campaign.objects.count() == 0
    assert lead_client.post(url("campaign-launch", campaign_id=999999)).status_code == 404
    assert lead_client.get(url("campaign-candidates", campaign_id=999999)).status_code == 404


def test_the_image_of_a_candidate_is_served_to_leads_and_ml_but_not_annotators(
    lead_client, ml_client, annotator_client, config
):
    prompt_set = prompt_set_make(originals=1, perturbed=False)
    key = default_storage.save("candidates/ab/abc.png", ContentFile(b"\x89PNG-bytes"))
    campaign = Campaign.objects.create(name="c", prompt_set=prompt_set)
    candidate = Candidate.objects.create(
        campaign=campaign, prompt=prompt_set.prompts.get(), config=config, seed=0,
        params_hash="p", status="done", storage_key=key, content_sha256="abc",
    )  # fmt: skip
    image = lead_client.get(url("candidate-image", candidate_id=candidate.pk))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == b"\x89PNG-bytes"
    assert ml_client.get(url("candidate-image", candidate_id=candidate.pk)).status_code == 200
    assert (
        annotator_client.get(url("candidate-image", candidate_id=candidate.pk)).status_code == 403
    )
    assert lead_client.get(url("candidate-image", candidate_id=999999)).status_code == 404


def test_an_s3_image_is_a_redirect_to_a_presigned_url(lead_client, config, s3_settings):
    prompt_set = prompt_set_make(originals=1, perturbed=False)
    campaign = Campaign.objects.create(name="c", prompt_set=prompt_set)
    candidate = Candidate.objects.create(
        campaign=campaign, prompt=prompt_set.prompts.get(), config=config, seed=0,
        params_hash="p", status="done", storage_key="candidates/ab/abc.png", content_sha256="abc",
    )  # fmt: skip
    response = lead_client.get(url("candidate-image", candidate_id=candidate.pk))
    assert response.status_code == 302
    assert f"/{s3_settings['S3_BUCKET']}/candidates/ab/abc.png?" in response["Location"]


def test_ml_engineers_read_but_do_not_write_and_annotators_get_nothing(
    ml_client, annotator_client, config
):
    assert ml_client.get(url("config-list")).status_code == 200
    assert ml_client.get(url("campaign-list")).status_code == 200
    assert ml_client.post(url("config-list"), {"name": "x"}, format="json").status_code == 403
    assert ml_client.post(url("config-check", config_id=config.pk)).status_code == 403
    for name in ("config-list", "campaign-list"):
        assert annotator_client.get(url(name)).status_code == 403
