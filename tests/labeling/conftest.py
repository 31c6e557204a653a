"""Fixtures of the labeling tests: both engines of the hot path, API clients per annotator."""

import pytest

from annotation.services import assignment


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Accounts are made by the dozen here; the hashing cost is not what these tests test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Per-process caches of the hot path start empty in every test (ids are reused)."""
    assignment._prefetch_cache.clear()
    assignment._last_reclaim = 0.0
    yield
    assignment._prefetch_cache.clear()


@pytest.fixture(params=["sql", "orm"])
def engine(request, settings):
    """The PostgreSQL statements, and the portable ORM path the SQLite demo runs."""
    settings.LABELING_ENGINE = request.param
    return request.param
