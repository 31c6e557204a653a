"""The API's shared behaviour: authentication, the error format, the OpenAPI schema."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_health_answers_without_login():
    response = APIClient().get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "postgresql"}


def test_anonymous_request_gets_a_403_in_the_error_format():
    # the session is tried first and has no challenge to offer, so DRF answers 403, not 401
    response = APIClient().get("/api/me/")
    assert response.status_code == 403
    assert response.json() == {
        "error": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


def test_token_authentication(lead):
    token = APIClient().post("/api/auth/token/", {"username": "lead", "password": "lead-pass-123"})
    assert token.status_code == 200
    assert ApiToken.objects.get(user=lead).prefix == token.json()["token"][:10]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    assert client.get("/api/me/").json() == {"username": "lead", "roles": ["lead"]}


def test_wrong_credentials_name_the_problem():
    response = APIClient().post("/api/auth/token/", {"username": "nobody"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["field"] == "password"
    assert body["detail"] == "password: This field is required."


def test_unknown_api_path_is_a_404():
    assert APIClient().get("/api/nothing-here/").status_code == 404


def test_schema_describes_every_endpoint_and_validates(tmp_path, lead_client):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert {"/api/health/", "/api/me/", "/api/auth/token/"} <= set(schema["paths"])
    assert lead_client.get("/api/schema/").status_code == 200
    assert lead_client.get("/api/docs/").status_code == 200


def test_api_docs_page_loads_swagger_ui_from_our_own_static_files(client):
    # Given the docs page (anyone may read it; the schema it shows is the public API's)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    # Then every script, stylesheet and icon it loads is a local static URL, none from a CDN
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(urls) == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    assert "//" not in "".join(urls)
    assert 'url: "/api/schema/"' in html
    # And the files are there to serve
    for url in urls:
        assert finders.find(url.removeprefix("/static/")), url
