"""API tokens: only a digest is stored, they expire and are revoked (API, admin), only staff
roles obtain one with a password, and an admin's command makes one for any account."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create, api_tokens_revoke_all
from config.remembered import Remembered
from tests.labeling.factories import next_url, queue_for_annotators

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def obtain(username: str, password: str, **extra):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password, **extra})


def test_only_a_digest_of_the_key_is_stored(lead):
    answer = obtain("lead", "lead-pass-123", name="laptop")

    assert answer.status_code == 200
    key = answer.json()["token"]
    assert answer.json()["prefix"] == key[:10] and answer.json()["name"] == "laptop"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        (row,) = cursor.fetchall()
        cursor.execute("SELECT to_regclass('authtoken_token')")
        (old_table,) = cursor.fetchone()
    assert all(key not in str(value) for value in row)
    assert ApiToken.objects.get().prefix == key[:10]
    assert old_table is None  # rest_framework.authtoken's clear-text table is gone
    assert token_client(key).get("/api/me/").json() == {"username": "lead", "roles": ["lead"]}


def test_a_token_expires_after_the_configured_lifetime(lead, settings):
    settings.API_TOKEN_LIFETIME_DAYS = 30
    before = timezone.now()

    key = obtain("lead", "lead-pass-123").json()["token"]

    token = ApiToken.objects.get()
    assert before + timedelta(days=30) <= token.expires_at <= timezone.now() + timedelta(days=30)
    ApiToken.objects.update(
        created_at=timezone.now() - timedelta(days=31), expires_at=timezone.now()
    )
    refused = token_client(key).get("/api/me/")
    assert refused.status_code == 403  # the session is the first authenticator: no 401
    assert refused.json() == {"error": "authentication_failed", "detail": "Token expired."}


def test_an_expired_token_is_refused_on_the_labeling_loop(annotator, settings):
    settings.AUTH_REMEMBER_SECONDS = 0  # nothing remembered: every request checks the token
    queue = queue_for_annotators()
    issued = api_token_create(user=annotator, lifetime=timedelta(days=1))
    client = token_client(issued.key)
    assert client.post(next_url(queue), {}, format="json").status_code == 200

    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())

    refused = client.post(next_url(queue), {}, format="json")
    assert refused.status_code == 403  # the session is the first authenticator: no 401
    assert refused.json()["detail"] == "Token expired."


def test_revoking_the_current_token_through_the_api(ml_engineer, settings):
    settings.AUTH_REMEMBER_SECONDS = 0
    key = obtain("mle", "mle-pass-123").json()["token"]
    other = obtain("mle", "mle-pass-123").json()["token"]
    client = token_client(key)

    answer = client.post("/api/auth/token/revoke/")

    assert answer.status_code == 200 and answer.json() == {"revoked": 1}
    refused = client.get("/api/me/")
    assert refused.status_code == 403  # the session is the first authenticator: no 401
    assert refused.json() == {"error": "authentication_failed", "detail": "Token revoked."}
    assert token_client(other).get("/api/me/").status_code == 200  # only the one in use
    assert refused.json() == token_client(key).post("/api/reward/score", {}).json()


def test_every_operation_remembers_a_token_check_for_the_interval_and_no_longer(lead, settings):
    # given a lead's token, its check remembered for a minute after a first request
    settings.AUTH_REMEMBER_SECONDS = 60
    client = token_client(api_token_create(user=lead).key)
    assert client.get("/api/me/").status_code == 200

    # when every token of the account is revoked
    api_tokens_revoke_all(user=lead)

    # then the remembered check still answers within the interval, and once it is older than
    # the interval (an interval of 0: any check is) the token is refused
    assert client.get("/api/me/").status_code == 200
    settings.AUTH_REMEMBER_SECONDS = 0
    refused = client.get("/api/me/")
    assert refused.status_code == 403  # the session is the first authenticator: no 401
    assert refused.json() == {"error": "authentication_failed", "detail": "Token revoked."}


def test_a_remembered_success_lasts_exactly_the_interval_by_its_clock(settings):
    settings.AUTH_REMEMBER_SECONDS = 1
    now = [100.0]
    memory = Remembered(clock=lambda: now[0])
    memory.put("key", "user")

    now[0] = 100.999
    assert memory.get("key") == "user"
    now[0] = 101.0
    assert memory.get("key") is None
    settings.AUTH_REMEMBER_SECONDS = 0
    memory.put("other", "user")
    assert memory.get("other") is None  # nothing is remembered with an interval of 0


def test_revoke_all_ends_every_token_of_the_account(ml_engineer, lead, settings):
    settings.AUTH_REMEMBER_SECONDS = 0
    keys = [obtain("mle", "mle-pass-123").json()["token"] for _ in range(3)]
    lead_key = obtain("lead", "lead-pass-123").json()["token"]

    answer = token_client(keys[0]).post("/api/auth/token/revoke-all/")

    assert answer.json() == {"revoked": 3}
    assert [token_client(k).get("/api/me/").status_code for k in keys] == [403, 403, 403]
    assert token_client(lead_key).get("/api/me/").status_code == 200


def test_revoking_needs_a_token_not_a_session(lead_client):
    answer = lead_client.post("/api/auth/token/revoke/")

    assert answer.status_code == 400
    assert answer.json()["field"] == "authorization"


def test_an_annotator_cannot_obtain_a_token(annotator):
    answer = obtain("ann", "annotator-pass")

    assert answer.status_code == 403
    assert answer.json() == {
        "error": "token_not_for_role",
        "detail": "API tokens are issued to lead, ml, admin accounts only; annotators label "
        "in the browser",
        "field": "username",
    }
    assert ApiToken.objects.count() == 0


def test_wrong_credentials_give_no_token(lead):
    answer = obtain("lead", "not-the-password")

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_credentials",
        "detail": "unable to log in with the username and password given",
    }
    assert ApiToken.objects.count() == 0


def test_a_token_notes_its_last_use(lead):
    issued = api_token_create(user=lead)
    assert issued.token.last_used_at is None

    token_client(issued.key).get("/api/me/")

    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


def test_the_admin_lists_tokens_per_user_without_their_keys(lead, annotator):
    root = _superuser()
    issued = api_token_create(user=lead, name="ci")
    admin = Client()
    admin.force_login(root)

    pages = [
        admin.get(reverse("admin:accounts_apitoken_changelist")),
        admin.get(reverse("admin:accounts_apitoken_change", args=[issued.token.pk])),
        admin.get(reverse("admin:auth_user_change", args=[lead.pk])),
    ]

    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert issued.token.prefix in html
        assert issued.key not in html and issued.token.digest not in html
    assert "ci" in pages[0].content.decode()


def test_an_admin_revokes_tokens_in_the_admin(lead):
    issued = api_token_create(user=lead)
    admin = Client()
    admin.force_login(_superuser())

    admin.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [issued.token.pk]},
    )

    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert token_client(issued.key).get("/api/me/").status_code == 403


def test_leads_and_ml_engineers_do_not_see_tokens_in_the_admin(lead, ml_engineer):
    for user in (lead, ml_engineer):
        client = Client()
        client.force_login(user)
        assert client.get(reverse("admin:accounts_apitoken_changelist")).status_code == 403


def test_the_create_token_command_prints_a_working_key_once(annotator, capsys, settings):
    settings.AUTH_REMEMBER_SECONDS = 0
    queue = queue_for_annotators()

    call_command("create_token", "--username", "ann", "--name", "load-test", "--days", "2")

    out, err = capsys.readouterr()
    key = out.strip()
    token = ApiToken.objects.get(user=annotator)
    assert token.prefix == key[:10] and token.name == "load-test"
    assert key not in err and token.prefix in err
    assert token.expires_at - token.created_at == timedelta(days=2)
    assert token_client(key).post(next_url(queue), {}, format="json").status_code == 200


def test_the_create_token_command_names_what_is_wrong(annotator):
    with pytest.raises(CommandError, match="--username: no user 'nobody'"):
        call_command("create_token", "--username", "nobody")
    with pytest.raises(CommandError, match="--days: a token must live a positive time"):
        call_command("create_token", "--username", "ann", "--days", "0")
    assert ApiToken.objects.count() == 0


def _superuser():
    from annotation.services.annotators import user_create
    from config.roles import Role

    return user_create(username="root", password="root-pass-123", role=Role.ADMIN)
