"""The labeling API with real credentials (tokens, sessions), and a database connection that
dies under it."""

import uuid

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import api_token_create, api_tokens_revoke_all
from annotation.models import Assignment, Judgment
from tests.conftest import database_url_of_test
from tests.labeling.factories import annotators, next_url, queue_with_pairs, submit_url


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user).key}")
    return client


@pytest.mark.django_db
def test_an_annotator_labels_with_an_api_token():
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    client = token_client(ann)

    items = client.post(next_url(queue), {"count": 1}, format="json").json()["items"]
    response = client.post(
        submit_url(queue),
        {"pair": items[0]["pair"], "client_submission_id": str(uuid.uuid4()), "choice": "tie"},
        format="json",
    )

    assert response.status_code == 201
    assert Judgment.objects.get().annotator == ann


@pytest.mark.django_db
def test_a_wrong_or_inactive_token_is_refused_and_nothing_is_leased():
    queue, _ = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    client = token_client(ann)
    get_user_model().objects.filter(pk=ann.pk).update(is_active=False)
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    inactive = client.post(next_url(queue), {}, format="json")
    wrong = stranger.post(next_url(queue), {}, format="json")

    assert inactive.status_code == 403  # the session is the first authenticator: no 401
    assert inactive.json() == {
        "error": "authentication_failed",
        "detail": "User inactive or deleted.",
    }
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "authentication_failed", "detail": "Invalid token."}
    assert Assignment.objects.count() == 0


@pytest.mark.django_db
def test_a_revoked_token_stops_working_once_its_remembered_check_is_older_than_the_interval(
    settings,
):
    # given a token that has just been used (its check is remembered for a minute)
    settings.AUTH_REMEMBER_SECONDS = 60
    queue, _ = queue_with_pairs(n_pairs=3)
    (ann,) = annotators(1)
    client = token_client(ann)
    assert client.post(next_url(queue), {"count": 1}, format="json").status_code == 200

    # when it is revoked
    api_tokens_revoke_all(user=ann)

    # then it still works within the interval, and is refused once the remembered check is
    # older than the interval (an interval of 0: any check is)
    assert client.post(next_url(queue), {"count": 1}, format="json").status_code == 200
    settings.AUTH_REMEMBER_SECONDS = 0
    refused = client.post(next_url(queue), {"count": 1}, format="json")
    assert refused.status_code == 403  # the session is the first authenticator: no 401
    assert refused.json() == {"error": "authentication_failed", "detail": "Token revoked."}


@pytest.mark.django_db
def test_the_browser_session_labels_too_and_needs_its_csrf_token():
    queue, _ = queue_with_pairs(n_pairs=1)
    (ann,) = annotators(1)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ann)

    refused = browser.post(next_url(queue), {}, content_type="application/json")
    assert refused.status_code == 403
    assert Assignment.objects.count() == 0
    browser.get("/accounts/login/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value

    allowed = browser.post(
        next_url(queue), {}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert allowed.status_code == 200
    assert Assignment.objects.filter(annotator=ann).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_dead_database_connection_is_replaced_without_failing_the_request(settings):
    queue, pairs = queue_with_pairs(n_pairs=2)
    (ann,) = annotators(1)
    client = token_client(ann)
    assert client.post(next_url(queue), {"count": 1}, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    dsn = database_url_of_test()
    with psycopg.connect(dsn, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])

    response = client.post(next_url(queue), {"count": 2}, format="json")

    assert response.status_code == 200
    assert [i["pair"] for i in response.json()["items"]] == [pairs[0].pk, pairs[1].pk]
    connection.close()
