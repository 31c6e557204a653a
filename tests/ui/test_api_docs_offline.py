"""/api/docs/ on a machine without internet: Swagger UI comes from our static files
(drf-spectacular-sidecar), so with every other host blocked the page still lists the API's
operations, and it asks no other host for anything."""

from urllib.parse import urlsplit

import pytest

from tests.ui.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs_list_the_operations_with_every_other_host_blocked(
    live_server, context, ml_engineer, artifacts
):
    # Given a browser that reaches only the live server (every other host is cut off)
    ours = urlsplit(live_server.url).netloc
    blocked: list[str] = []

    def only_ours(route):
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_ours)
    sign_in(context, live_server, ml_engineer)
    page = context.new_page()

    # When an ML engineer opens the API docs
    page.goto(f"{live_server.url}/api/docs/")

    # Then Swagger UI draws the operations list from /api/schema/
    health = page.locator('.opblock-summary-path[data-path="/api/health/"]')
    health.wait_for()
    assert health.inner_text().strip() == "/api/health/"
    assert page.locator(".opblock-summary-path[data-path='/api/training-runs/']").count() >= 1
    assert page.locator(".opblock").count() > 50
    page.screenshot(path=str(artifacts / "api-docs-offline.png"), full_page=False)
    # And it asked no other host for anything
    assert blocked == []
