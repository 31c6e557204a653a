"""Labeling queues: the service, the leads' API and admin, what annotators may and may not see,
and the OpenAPI description of the labeling API."""

import io

import pytest
import yaml
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image

from annotation.models import InstructionImage, LabelingQueue, PairBuild
from annotation.services.queues import labeling_queue_create
from config.errors import ValidationFailed
from tests.factories import CampaignFactory, CandidateFactory, PromptFactory
from tests.labeling.factories import annotators, client_for, queue_for_annotators

pytestmark = pytest.mark.django_db


def test_a_queue_is_created_active_with_its_annotators_and_instructions(lead):
    (vip,) = annotators(1, prefix="vip")

    queue = labeling_queue_create(
        name="spatial v1",
        instructions="# Pick the image that follows the prompt\n![good](example:good)",
        overlap=5,
        lease_seconds=300,
        prefetch=4,
        allowed_users=[vip],
        allowed_group_names=["annotator"],
        created_by=lead,
    )

    assert (queue.status, queue.overlap, queue.lease_seconds, queue.prefetch) == (
        "active",
        5,
        300,
        4,
    )
    assert list(queue.allowed_users.all()) == [vip]
    assert [g.name for g in queue.allowed_groups.all()] == ["annotator"]
    assert queue.created_by == lead
    assert labeling_queue_create(name="spatial v1", exist_ok=True) == queue


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": ""}, "name"),
        ({"name": "dup"}, "name"),
        ({"name": "q", "overlap": 0}, "overlap"),
        ({"name": "q", "overlap": 51}, "overlap"),
        ({"name": "q", "lease_seconds": 5}, "lease_seconds"),
        ({"name": "q", "prefetch": 21}, "prefetch"),
        ({"name": "q", "allowed_group_names": ["nobody"]}, "allowed_groups"),
    ],
)
def test_a_bad_queue_is_refused_naming_the_field_and_nothing_is_created(kwargs, field):
    labeling_queue_create(name="dup")

    with pytest.raises(ValidationFailed) as refused:
        labeling_queue_create(**kwargs)

    assert refused.value.field == field
    assert list(LabelingQueue.objects.values_list("name", flat=True)) == ["dup"]


def test_leads_create_pause_and_resume_queues_over_the_api(lead_client):
    (ann,) = annotators(1)

    created = lead_client.post(
        "/api/labeling/manage/queues/",
        {"name": "q1", "overlap": 2, "allowed_groups": ["annotator"], "allowed_usernames": []},
        format="json",
    )
    assert created.status_code == 201, created.content
    queue_id = created.json()["id"]
    assert created.json()["allowed_groups"] == ["annotator"]
    paused = lead_client.post(f"/api/labeling/manage/queues/{queue_id}/pause/")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert client_for(ann).get("/api/labeling/queues/").json() == []
    resumed = lead_client.post(f"/api/labeling/manage/queues/{queue_id}/resume/")
    assert resumed.json()["status"] == "active"
    assert [q["id"] for q in client_for(ann).get("/api/labeling/queues/").json()] == [queue_id]
    listed = lead_client.get("/api/labeling/manage/queues/").json()
    assert [q["name"] for q in listed["results"]] == ["q1"]


def test_an_unknown_username_is_a_400_and_no_queue_is_made(lead_client):
    response = lead_client.post(
        "/api/labeling/manage/queues/",
        {"name": "q1", "allowed_usernames": ["ghost"]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["field"] == "allowed_usernames"
    assert LabelingQueue.objects.count() == 0


def test_annotators_cannot_reach_any_lead_endpoint(annotator_client):
    queue = queue_for_annotators()
    build = PairBuild.objects.create(queue=queue, campaign=CampaignFactory(), kind="same_prompt")

    calls = [
        ("get", "/api/labeling/manage/queues/", None),
        ("post", "/api/labeling/manage/queues/", {"name": "mine"}),
        ("post", f"/api/labeling/manage/queues/{queue.pk}/pause/", None),
        ("post", f"/api/labeling/manage/queues/{queue.pk}/resume/", None),
        ("post", f"/api/labeling/manage/queues/{queue.pk}/pair-builds/", {"kind": "same_prompt"}),
        ("get", f"/api/labeling/manage/pair-builds/{build.pk}/", None),
    ]
    for method, url, body in calls:
        response = getattr(annotator_client, method)(url, body, format="json")
        assert response.status_code == 403, url
        assert response.json()["error"] == "permission_denied"
    assert LabelingQueue.objects.get().status == "active"
    assert PairBuild.objects.count() == 1


def test_annotators_see_only_the_active_queues_they_may_label():
    mine = queue_for_annotators(name="mine")
    paused = queue_for_annotators(name="paused")
    LabelingQueue.objects.filter(pk=paused.pk).update(status="paused")
    (vip,) = annotators(1, prefix="vip")
    queue_for_annotators(name="vip-only", allowed_group_names=[], allowed_users=[vip])
    (ann,) = annotators(1)

    response = client_for(ann).get("/api/labeling/queues/")

    assert response.json() == [
        {
            "id": mine.pk,
            "name": "mine",
            "instructions": "",
            "prefetch": 3,
            "lease_seconds": 600,
            "criteria": [],
        }
    ]
    assert [q["name"] for q in client_for(vip).get("/api/labeling/queues/").json()] == [
        "mine",
        "vip-only",
    ]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def test_queue_instructions_come_with_their_example_images():
    queue = queue_for_annotators(instructions="Choose well. ![left wins](example:good)")
    InstructionImage.objects.create(
        queue=queue,
        name="good",
        caption="left wins",
        image=SimpleUploadedFile("good.png", _png(), content_type="image/png"),
    )
    (ann,) = annotators(1)
    (stranger,) = annotators(1, prefix="stranger")
    Group.objects.get(name="annotator").user_set.remove(stranger)

    detail = client_for(ann).get(f"/api/labeling/queues/{queue.pk}/").json()

    assert detail["instructions"] == "Choose well. ![left wins](example:good)"
    assert detail["example_images"] == [
        {
            "name": "good",
            "caption": "left wins",
            "url": f"/api/labeling/queues/{queue.pk}/examples/good/",
        }
    ]
    image = client_for(ann).get(detail["example_images"][0]["url"])
    assert image.status_code == 200
    assert b"".join(image.streaming_content) == _png()
    assert client_for(stranger).get(detail["example_images"][0]["url"]).status_code == 403
    assert client_for(ann).get(f"/api/labeling/queues/{queue.pk}/examples/bad/").status_code == 404


def test_leads_manage_queues_in_the_admin(lead):
    client = Client()
    client.force_login(lead)
    annotator_group = Group.objects.get_or_create(name="annotator")[0]

    refused = client.post(
        "/admin/annotation/labelingqueue/add/",
        {
            "name": "admin-q",
            "instructions": "# Rules",
            "overlap": 99,
            "lease_seconds": 600,
            "prefetch": 3,
            "status": "active",
            "allowed_groups": [annotator_group.pk],
            "instruction_images-TOTAL_FORMS": 0,
            "instruction_images-INITIAL_FORMS": 0,
        },
    )
    assert refused.status_code == 200
    assert "overlap must be between 1 and 50" in refused.content.decode()
    assert LabelingQueue.objects.count() == 0

    created = client.post(
        "/admin/annotation/labelingqueue/add/",
        {
            "name": "admin-q",
            "instructions": "# Rules",
            "overlap": 3,
            "lease_seconds": 600,
            "prefetch": 3,
            "status": "active",
            "allowed_groups": [annotator_group.pk],
            "instruction_images-TOTAL_FORMS": 1,
            "instruction_images-INITIAL_FORMS": 0,
            "instruction_images-0-name": "good",
            "instruction_images-0-caption": "a good answer",
            "instruction_images-0-image": SimpleUploadedFile("g.png", _png(), "image/png"),
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    queue = LabelingQueue.objects.get()
    assert (queue.name, queue.created_by, queue.instruction_images.get().name) == (
        "admin-q",
        lead,
        "good",
    )

    client.post(
        "/admin/annotation/labelingqueue/",
        {"action": "pause", "_selected_action": [queue.pk]},
    )
    assert LabelingQueue.objects.get().status == "paused"
    client.post(
        "/admin/annotation/labelingqueue/",
        {"action": "resume", "_selected_action": [queue.pk]},
    )
    assert LabelingQueue.objects.get().status == "active"


def test_leads_start_a_pair_build_from_the_admin(lead, django_capture_on_commit_callbacks):
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    CandidateFactory.create_batch(2, campaign=campaign, prompt=prompt)
    queue = queue_for_annotators()
    client = Client()
    client.force_login(lead)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/admin/annotation/pairbuild/add/",
            {
                "queue": queue.pk,
                "campaign": campaign.pk,
                "kind": "same_prompt",
                "options": '{"priority": 2}',
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    build = PairBuild.objects.get()
    assert (build.status, build.created_by, build.options["priority"]) == ("queued", lead, 2)
    assert len(callbacks) == 1  # the cpu task is queued once the row is committed


def test_the_admin_refuses_bad_build_options(lead):
    client = Client()
    client.force_login(lead)
    queue = queue_for_annotators()

    response = client.post(
        "/admin/annotation/pairbuild/add/",
        {
            "queue": queue.pk,
            "campaign": CampaignFactory().pk,
            "kind": "same_prompt",
            "options": '{"sample_per_prompt": 0}',
        },
    )

    assert response.status_code == 200
    assert "must be an integer from 1 to 10000" in response.content.decode()
    assert PairBuild.objects.count() == 0


def test_the_openapi_schema_describes_the_labeling_api_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"

    call_command(
        "spectacular",
        "--urlconf",
        "tests.labeling.schema_urls",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(out),
    )

    paths = yaml.safe_load(out.read_text())["paths"]
    assert {
        "/api/labeling/queues/",
        "/api/labeling/queues/{queue_id}/",
        "/api/labeling/queues/{queue_id}/next/",
        "/api/labeling/queues/{queue_id}/submit/",
        "/api/labeling/queues/{queue_id}/heartbeat/",
        "/api/labeling/queues/{queue_id}/undo/",
        "/api/labeling/queues/{queue_id}/progress/",
        "/api/labeling/queues/{queue_id}/examples/{name}/",
        "/api/labeling/images/{token}/",
        "/api/labeling/manage/queues/",
        "/api/labeling/manage/queues/{queue_id}/pause/",
        "/api/labeling/manage/queues/{queue_id}/resume/",
        "/api/labeling/manage/queues/{queue_id}/pair-builds/",
        "/api/labeling/manage/pair-builds/{build_id}/",
    } <= set(paths)
    submit = paths["/api/labeling/queues/{queue_id}/submit/"]["post"]
    assert {"200", "201", "400", "403", "404", "409"} <= set(submit["responses"])
