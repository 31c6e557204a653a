"""The probes and Prometheus ask a pod at its own address (Host: the pod's IP, or compose's
`web:8000`): with the shipped ALLOWED_HOSTS those three paths are answered, with their own rules
(the metrics token), and every other request with such a Host is still refused."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

SHIPPED_HOSTS = ["labels.example.org"]  # deploy/k8s/base/configmap.yaml, deploy/.env.example
TOKEN = "scrape-token-0123456789"
POD = "10.1.2.3:8000"


@pytest.fixture
def shipped(settings):
    settings.ALLOWED_HOSTS = SHIPPED_HOSTS
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.parametrize("host", [POD, "web:8000"])
def test_probes_and_the_scrape_are_answered_whatever_the_host(shipped, host):
    client = Client(HTTP_HOST=host)
    live = client.get("/api/health/live/")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = client.get("/api/health/")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "postgresql"})
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    assert b"spatialprefs_celery_queue_length" in scrape.content


def test_the_scrape_still_needs_the_token(shipped):
    client = Client(HTTP_HOST=POD)
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_every_other_request_with_that_host_is_still_refused(shipped):
    client = Client(HTTP_HOST=POD)
    for path in [
        "/",
        "/accounts/login/",
        "/api/me/",
        "/api/health",
        "/api/health/x",
        "/api/health/live",
        "/metrics/",
        "/admin/",
    ]:
        assert (path, client.get(path).status_code) == (path, 400)
    # other methods on the probe paths too: only GET is answered before the Host check
    assert client.post("/api/health/").status_code == 400
    assert client.head("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400
    # and the site's own name is served as before
    assert Client(HTTP_HOST="labels.example.org").get("/accounts/login/").status_code == 200


def test_probe_answers_keep_the_headers_of_the_middleware_above(shipped, settings):
    settings.SECURE_SSL_REDIRECT = True  # plain HTTP, as the kubelet asks: not sent to https
    response = Client(HTTP_HOST=POD).get("/api/health/live/", headers={"X-Request-ID": "probe-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "probe-1"
    assert response["X-Content-Type-Options"] == "nosniff"
