"""Liveness and readiness with the real PostgreSQL, Redis and storage; a dependency made
unreachable through the settings (a closed port, an unwritable folder), not a mock."""

import socket

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed once the socket is: nothing listens there


def test_liveness_answers_without_login_and_without_reading_the_database(
    django_assert_num_queries,
):
    with django_assert_num_queries(0):
        response = APIClient().get("/api/health/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_is_200_when_postgresql_redis_and_storage_answer(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")  # the suite's real Redis is asked
    response = APIClient().get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "postgresql"}


def test_readiness_is_503_naming_redis_when_the_broker_does_not_answer(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "redis": "unreachable"}
    assert response.headers["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
    # and liveness still says the process answers: a Redis outage restarts nothing
    assert APIClient().get("/api/health/live/").status_code == 200


def test_readiness_names_the_scoring_redis_when_only_it_is_down(settings):
    settings.REWARD_SCORE_JOBS_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "redis": "unreachable"}


def test_readiness_is_503_naming_storage_when_it_cannot_be_written(settings, tmp_path):
    folder = tmp_path / "media"
    folder.write_text("a file where the storage's folder should be")  # root writes any folder
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder)},
        },
    }
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "storage": "unreachable"}


def test_readiness_with_a_filesystem_broker_asks_no_redis(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    assert APIClient().get("/api/health/").status_code == 200
