"""Brute force: failed logins lock a (username, address) pair on all three logins (django-axes).

The limit and cool-off are settings (LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES); here the
limit is 3. The cool-off is passed by ageing the recorded attempts, as a clock moving on would.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db

LIMIT = 3
COOL_OFF = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF


def token_attempt(password: str, username: str = "lead", address: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def page_attempt(client: Client, url: str, password: str, username: str = "lead"):
    return client.post(url, {"username": username, "password": password})


def test_the_token_endpoint_locks_after_the_limit_and_refuses_the_right_password(lead):
    failures = [token_attempt("wrong-pass").status_code for _ in range(LIMIT)]

    locked = token_attempt("lead-pass-123")

    assert failures == [400] * (LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert locked.json() == {
        "error": "locked_out",
        "detail": "too many failed logins for this account from your address: "
        "try again in 15 minutes",
        "retry_after": 900,
    }
    assert ApiToken.objects.count() == 0


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_the_login_pages_lock_after_the_limit_with_a_page_that_says_so(lead, url):
    browser = Client(REMOTE_ADDR="10.0.0.2")
    failures = [page_attempt(browser, url, "wrong-pass").status_code for _ in range(LIMIT)]

    locked = page_attempt(browser, url, "lead-pass-123")

    assert failures == [200] * (LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert locked["Content-Type"].startswith("text/html")
    html = locked.content.decode()
    assert "Too many failed logins" in html
    assert "try again in 15 minutes" in html
    assert "_auth_user_id" not in browser.session  # not logged in
    assert browser.get("/admin/").status_code == 302


def test_the_lock_holds_one_username_from_one_address(lead, ml_engineer):
    for _ in range(LIMIT):
        token_attempt("wrong-pass")

    assert token_attempt("lead-pass-123").status_code == 429
    assert token_attempt("lead-pass-123", address="10.9.9.9").status_code == 200
    assert token_attempt("mle-pass-123", username="mle").status_code == 200


def test_an_admin_lifts_a_lock_with_axes_reset_username(lead):
    for _ in range(LIMIT):
        token_attempt("wrong-pass")
    assert token_attempt("lead-pass-123").status_code == 429

    call_command("axes_reset_username", "lead")

    assert token_attempt("lead-pass-123").status_code == 200


def test_the_lock_lifts_after_the_cool_off(lead):
    browser = Client(REMOTE_ADDR="10.0.0.3")
    for _ in range(LIMIT):
        page_attempt(browser, "/accounts/login/", "wrong-pass")
    assert page_attempt(browser, "/accounts/login/", "lead-pass-123").status_code == 429

    # when the cool-off has passed since the last attempt
    last = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=last - COOL_OFF - timedelta(seconds=1))

    # then the right password logs in, and the count starts again
    assert page_attempt(browser, "/accounts/login/", "lead-pass-123").status_code == 302
    assert browser.get("/").status_code == 200


def test_a_successful_login_clears_the_count(lead):
    for _ in range(LIMIT - 1):
        assert token_attempt("wrong-pass").status_code == 400
    assert token_attempt("lead-pass-123").status_code == 200

    later = [token_attempt("wrong-pass").status_code for _ in range(LIMIT - 1)]

    assert later == [400] * (LIMIT - 1)
    assert token_attempt("lead-pass-123").status_code == 200
