"""Fixtures of the labeling tests."""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Accounts are made by the dozen here; the hashing cost is not what these tests test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
