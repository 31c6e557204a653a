"""Roles: who reaches the admin, which admin pages, and the create_user command."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.services.annotators import user_create
from config.roles import Role
from tests.factories import (
    CandidateFactory,
    DatasetVersionFactory,
    JudgmentFactory,
    PairFactory,
    PromptFactory,
    RewardModelFactory,
    TrainingRunFactory,
)

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_annotator_is_sent_to_the_admin_login(annotator):
    response = logged_in(annotator).get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_annotator_cannot_open_any_admin_model_page(annotator):
    client = logged_in(annotator)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 302, url


def test_lead_reaches_generation_annotation_and_dataset_pages(lead):
    client = logged_in(lead)
    for name in [
        "generation_workers_promptset",
        "annotation_pair",
        "training_bridge_datasetversion",
    ]:
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    # leads may read training runs but not add them
    assert client.get(reverse("admin:training_bridge_trainingrun_changelist")).status_code == 200
    assert client.get(reverse("admin:training_bridge_trainingrun_add")).status_code == 403


def test_ml_engineer_manages_training_and_reads_generation(ml_engineer):
    client = logged_in(ml_engineer)
    assert client.get(reverse("admin:training_bridge_trainingrun_add")).status_code == 200
    assert client.get(reverse("admin:generation_workers_prompt_changelist")).status_code == 200
    assert client.get(reverse("admin:generation_workers_generatorconfig_add")).status_code == 403
    assert client.get(reverse("admin:annotation_judgment_changelist")).status_code == 403


def _changelist_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_every_admin_list_page_loads_without_n_plus_one_queries():
    superuser = user_create(username="root", password="root-pass-123", role=Role.ADMIN)
    client = logged_in(superuser)

    def seed():
        JudgmentFactory()
        PairFactory()
        CandidateFactory()
        PromptFactory()
        TrainingRunFactory()
        RewardModelFactory(run=TrainingRunFactory(), dataset_version=DatasetVersionFactory())

    seed()
    urls = [
        reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist")
        for m in admin.site._registry
    ]
    first = {url: _changelist_queries(client, url) for url in urls}
    for _ in range(4):
        seed()
    for url in urls:
        assert _changelist_queries(client, url) == first[url], url


def test_create_user_command_makes_an_annotator_without_staff_access():
    call_command(
        "create_user", "--username", "alice", "--role", "annotator", "--password", "pw-alice-1"
    )
    alice = get_user_model().objects.get(username="alice")
    assert (alice.is_staff, alice.is_superuser) == (False, False)
    assert [g.name for g in alice.groups.all()] == ["annotator"]
    assert alice.check_password("pw-alice-1")
    assert hasattr(alice, "annotator_profile")


def test_create_user_command_reads_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEAD_PASSWORD", "from-env-pass")
    call_command(
        "create_user", "--username", "bob", "--role", "lead", "--password-env", "LEAD_PASSWORD"
    )
    bob = get_user_model().objects.get(username="bob")
    assert bob.is_staff and bob.check_password("from-env-pass")


def test_create_user_command_refuses_a_short_password_naming_the_field():
    with pytest.raises(CommandError, match="password: the password needs at least 8 characters"):
        call_command("create_user", "--username", "carol", "--role", "ml", "--password", "short")
    assert not get_user_model().objects.filter(username="carol").exists()


def test_create_user_command_refuses_an_existing_user_unless_updating(annotator):
    with pytest.raises(CommandError, match="username: user 'ann' exists already"):
        call_command(
            "create_user", "--username", "ann", "--role", "lead", "--password", "another-pass"
        )
    annotator.refresh_from_db()
    assert annotator.is_staff is False
    call_command(
        "create_user",
        "--username",
        "ann",
        "--role",
        "lead",
        "--password",
        "another-pass",
        "--update",
    )
    annotator.refresh_from_db()
    assert annotator.is_staff is True


def test_create_user_refuses_an_unknown_role():
    with pytest.raises(Exception, match="role: unknown role 'boss'"):
        user_create(username="dave", password="long-enough", role="boss")
    assert not get_user_model().objects.filter(username="dave").exists()


def test_login_page_and_home_page(annotator):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "ann", "password": "annotator-pass"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert b"Labeling queues" in home.content
    assert b"/admin/" not in home.content
