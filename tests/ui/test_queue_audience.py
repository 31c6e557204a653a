"""Who may label a queue: the admin saves queues through the same services as the API; a queue
that names no group and no user (invisible to every annotator) is refused on its
`allowed_groups` field, with nothing saved; the lead's queue view says who sees the queue."""

import io

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from annotation.models import InstructionImage, LabelingQueue
from annotation.services.annotators import user_create
from annotation.services.queues import labeling_queue_create, labeling_queue_update
from config.errors import ValidationFailed
from config.roles import Role, role_groups_ensure

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/annotation/labelingqueue/add/"
NO_IMAGES = {"instruction_images-TOTAL_FORMS": 0, "instruction_images-INITIAL_FORMS": 0}


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def queue_form(**changes) -> dict:
    return {
        "name": "admin-q", "instructions": "# Rules", "overlap": 3, "lease_seconds": 600,
        "prefetch": 3, "status": "active", **NO_IMAGES, **changes,
    }  # fmt: skip


def test_the_admin_refuses_a_queue_nobody_may_label_naming_the_field(lead):
    response = client_of(lead).post(ADD_URL, queue_form())

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {
        "allowed_groups": [
            "nobody could label this queue: choose allowed groups (e.g. annotator) or allowed users"
        ]
    }
    assert LabelingQueue.objects.count() == 0


def test_a_new_queue_in_the_admin_offers_every_annotator_and_is_created_by_the_service(lead):
    annotators = role_groups_ensure()[Role.ANNOTATOR]
    client = client_of(lead)
    form = client.get(ADD_URL).context["adminform"].form
    assert list(form.initial["allowed_groups"]) == [annotators]

    created = client.post(
        ADD_URL,
        queue_form(
            allowed_groups=[annotators.pk], status="paused",
            **{"instruction_images-TOTAL_FORMS": 1, "instruction_images-0-name": "good",
               "instruction_images-0-caption": "a good answer",
               "instruction_images-0-image": SimpleUploadedFile("g.png", png(), "image/png")},
        ),
    )  # fmt: skip

    assert created.status_code == 302, created.context["adminform"].form.errors
    queue = LabelingQueue.objects.get()
    assert (queue.name, queue.status, queue.created_by, queue.overlap) == (
        "admin-q", "paused", lead, 3,
    )  # fmt: skip
    assert [g.name for g in queue.allowed_groups.all()] == ["annotator"]
    assert list(InstructionImage.objects.values_list("queue_id", "name")) == [(queue.pk, "good")]
    assert created["Location"] == "/admin/annotation/labelingqueue/"
    assert LogEntry.objects.get().object_id == str(queue.pk)


def test_a_change_in_the_admin_goes_through_the_service_and_cannot_empty_the_queue(lead):
    vip = user_create(username="vip", password="annotator-pass", role=Role.ANNOTATOR)
    queue = labeling_queue_create(name="q")
    url = f"/admin/annotation/labelingqueue/{queue.pk}/change/"
    client = client_of(lead)

    emptied = client.post(url, queue_form(name="q"))
    assert "allowed_groups" in emptied.context["adminform"].form.errors
    changed = client.post(url, queue_form(name="renamed", overlap=5, allowed_users=[vip.pk]))

    assert changed.status_code == 302
    queue.refresh_from_db()
    assert (queue.name, queue.overlap, queue.status) == ("renamed", 5, "active")
    assert list(queue.allowed_users.all()) == [vip]
    assert list(queue.allowed_groups.all()) == []


def test_the_api_refuses_a_queue_nobody_may_label_and_defaults_to_every_annotator(lead_client):
    user_create(username="vip", password="annotator-pass", role=Role.ANNOTATOR)
    url = "/api/labeling/manage/queues/"

    refused = lead_client.post(
        url, {"name": "nobody", "allowed_groups": [], "allowed_usernames": []}, format="json"
    )
    default = lead_client.post(url, {"name": "open"}, format="json")
    private = lead_client.post(url, {"name": "vip", "allowed_usernames": ["vip"]}, format="json")

    assert (refused.status_code, refused.json()["field"]) == (400, "allowed_groups")
    assert (default.status_code, private.status_code) == (201, 201)
    assert (default.json()["allowed_groups"], default.json()["allowed_users"]) == (
        ["annotator"], [],
    )  # fmt: skip
    assert (private.json()["allowed_groups"], private.json()["allowed_users"]) == ([], ["vip"])
    assert sorted(LabelingQueue.objects.values_list("name", flat=True)) == ["open", "vip"]


def test_the_services_refuse_to_empty_a_queue_and_change_nothing():
    queue = labeling_queue_create(name="q")

    with pytest.raises(ValidationFailed) as create:
        labeling_queue_create(name="other", allowed_group_names=[])
    with pytest.raises(ValidationFailed) as update:
        labeling_queue_update(
            queue_id=queue.pk, name="emptied", instructions="", overlap=3, lease_seconds=600,
            prefetch=3, allowed_users=[], allowed_group_names=[],
        )  # fmt: skip

    assert (create.value.field, update.value.field) == ("allowed_groups", "allowed_groups")
    queue.refresh_from_db()
    assert queue.name == "q"
    assert [g.name for g in queue.allowed_groups.all()] == ["annotator"]
    assert LabelingQueue.objects.count() == 1


def test_a_queue_that_names_nobody_is_for_every_annotator_one_that_names_users_for_them():
    vip = user_create(username="vip", password="annotator-pass", role=Role.ANNOTATOR)

    open_queue = labeling_queue_create(name="open")
    private = labeling_queue_create(name="private", allowed_users=[vip])

    assert [g.name for g in open_queue.allowed_groups.all()] == ["annotator"]
    assert list(open_queue.allowed_users.all()) == []
    assert list(private.allowed_groups.all()) == []
    assert list(private.allowed_users.all()) == [vip]


def test_a_rename_to_another_queues_name_is_refused_naming_the_field():
    labeling_queue_create(name="taken")
    queue = labeling_queue_create(name="mine")

    with pytest.raises(ValidationFailed) as refused:
        labeling_queue_update(
            queue_id=queue.pk, name="taken", instructions="", overlap=3, lease_seconds=600,
            prefetch=3, allowed_users=[], allowed_group_names=["annotator"],
        )  # fmt: skip

    assert refused.value.field == "name"
    assert sorted(LabelingQueue.objects.values_list("name", flat=True)) == ["mine", "taken"]


def test_the_queue_view_says_who_sees_the_queue(lead):
    vip = user_create(username="vip", password="annotator-pass", role=Role.ANNOTATOR)
    role_groups_ensure()
    open_queue = labeling_queue_create(
        name="open", allowed_users=[vip], allowed_group_names=["annotator"]
    )
    # a queue saved before the check existed, with nobody allowed
    hidden = LabelingQueue.objects.create(name="hidden")
    client = client_of(lead)

    shown = client.get(f"/leads/queues/{open_queue.pk}/").content.decode()
    nobody = client.get(f"/leads/queues/{hidden.pk}/").content.decode()

    assert 'data-visible-groups="annotator"' in shown
    assert 'data-visible-users="vip"' in shown
    assert 'data-nobody="true"' not in shown
    assert 'data-nobody="true"' in nobody
    assert "Visible to <b>nobody</b>" in nobody
