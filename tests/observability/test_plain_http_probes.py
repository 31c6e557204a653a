"""SECURE_SSL_REDIRECT on: the health probes and /metrics, which the kubelet and Prometheus ask
over plain HTTP inside the cluster, are answered; every other path still goes to https."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PROBES = ["/api/health/", "/api/health/live/"]


def test_probes_and_metrics_over_plain_http_are_answered_not_redirected(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    client = Client()
    for path in PROBES:
        response = client.get(path)
        assert (path, response.status_code) == (path, 200)
    scrape = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert scrape.status_code == 200
    assert b"spatialprefs_celery_queue_length" in scrape.content
    # the exemption does not let a caller past the token
    assert client.get("/metrics").status_code == 403


def test_every_other_path_still_redirects_to_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    for path in [
        "/",
        "/accounts/login/",
        "/api/generation/campaigns/",
        "/api/health/x",
        "/metrics/",
    ]:
        response = client.get(path)
        assert (path, response.status_code, response["Location"]) == (
            path,
            301,
            f"https://testserver{path}",
        )
    # and a request the proxy forwarded from https is served as before
    assert client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
