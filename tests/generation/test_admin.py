"""The admin: configs validated by the services, campaigns launched by an action, progress
and images shown."""

import pytest
from django.test import Client
from django.urls import reverse

from annotation.services.annotators import user_create
from config.roles import Role
from generation_workers.models import Campaign, Candidate, GeneratorConfig
from generation_workers.services.configs import generator_config_create
from tests.generation.conftest import prompt_set_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_browser() -> Client:
    client = Client()
    client.force_login(user_create(username="ada", password="lead-pass-123", role=Role.LEAD))
    return client


def config_form(**fields):
    return {
        "name": "p", "backend": "procedural", "model_path": "", "pipeline_class": "",
        "dtype": "float32", "device": "auto", "scheduler": "", "num_inference_steps": 30,
        "guidance_scale": 7.5, "width": 64, "height": 64, "negative_prompt": "",
        "batch_size": 4, "extra_args": "{}", "image_format": "png", "queue": "", **fields,
    }  # fmt: skip


def test_the_config_form_shows_the_services_error_on_the_field(lead_browser):
    response = lead_browser.post(
        reverse("admin:generation_workers_generatorconfig_add"),
        config_form(backend="diffusers", model_path="/nowhere/sd", width=64),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "model_path": ["/nowhere/sd does not exist on this machine"]
    }
    assert GeneratorConfig.objects.count() == 0
    created = lead_browser.post(
        reverse("admin:generation_workers_generatorconfig_add"), config_form()
    )
    assert created.status_code == 302
    assert GeneratorConfig.objects.get().width == 64


def test_a_lead_creates_a_campaign_in_the_admin_and_launches_it_with_the_action(
    lead_browser, django_capture_on_commit_callbacks, own_queue
):
    config = generator_config_create(
        name="p", backend="procedural", width=64, height=64, queue=own_queue
    )
    prompt_set = prompt_set_make(originals=2)
    add = reverse("admin:generation_workers_campaign_add")
    form = {
        "name": "from-admin", "prompt_set": prompt_set.pk, "prompt_filter": "{}",
        "configs": [config.pk], "seeds_per_prompt": 3, "base_seed": 0,
        "include_perturbations": "on",
    }  # fmt: skip
    refused = lead_browser.post(add, {**form, "prompt_filter": '{"splits": ["dev"]}'})
    assert refused.context["adminform"].form.errors == {"prompt_filter": ["unknown split 'dev'"]}
    assert lead_browser.post(add, form).status_code == 302
    campaign = Campaign.objects.get()
    assert (campaign.status, list(campaign.configs.all())) == ("draft", [config])

    with django_capture_on_commit_callbacks(execute=True):
        response = lead_browser.post(
            reverse("admin:generation_workers_campaign_changelist"),
            {"action": "launch", "_selected_action": [campaign.pk]},
            follow=True,
        )
    assert "Launched: 12 items queued." in response.content.decode()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.total_items) == ("running", 12)

    Candidate.objects.filter(
        pk__in=Candidate.objects.filter(campaign=campaign).values("pk")[:3]
    ).update(status="done", storage_key="candidates/aa/a.png", content_sha256="a" * 64)
    page = lead_browser.get(
        reverse("admin:generation_workers_campaign_changelist")
    ).content.decode()
    assert "3 / 0 / 12" in page
    detail = lead_browser.get(
        reverse("admin:generation_workers_campaign_change", args=[campaign.pk])
    ).content.decode()
    done = Candidate.objects.filter(campaign=campaign, status="done").first()
    assert reverse("api:generation:candidate-image", kwargs={"candidate_id": done.pk}) in detail
    listing = lead_browser.get(
        reverse("admin:generation_workers_candidate_changelist"),
        {"campaign__id__exact": campaign.pk},
    ).content.decode()
    assert listing.count('loading="lazy"') == 3


def test_the_check_action_queues_a_check_per_config(lead_browser, own_queue):
    config = generator_config_create(
        name="p", backend="procedural", width=64, height=64, queue=own_queue
    )
    response = lead_browser.post(
        reverse("admin:generation_workers_generatorconfig_changelist"),
        {"action": "check_configs", "_selected_action": [config.pk]},
        follow=True,
    )
    assert "Check queued for 1 config(s)" in response.content.decode()
    config.refresh_from_db()
    assert config.check_status == "checking"
