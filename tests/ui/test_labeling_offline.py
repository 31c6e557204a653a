"""The labeling page while the server answers 503 (its database is down): the annotator keeps
labeling the pairs already on the page, the page says the server is unavailable and how many
answers it keeps, retries when the server's Retry-After says, and once the server answers again
every answer lands exactly once. (tests/foundation/test_database_outage.py shows the server's
side of a real outage; here the browser sees one through routed API calls.)"""

import json
import time

import pytest

from annotation.models import Judgment
from annotation.services.annotators import user_create
from config.roles import Role
from tests.ui.conftest import sign_in
from tests.ui.factories import ui_queue
from tests.ui.labeling_page import LabelingPage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# next, submit, heartbeat, undo and progress of the labeling API (not its images).
LABELING_CALLS = "**/api/labeling/queues/*/*/"
SUBMIT_PATH = "/submit/"
RETRY_AFTER_S = 1


@pytest.fixture
def annotator_user(db):
    return user_create(username="ann-offline", password="annotator-pass", role=Role.ANNOTATOR)


def stored(user) -> dict[int, str]:
    rows = list(Judgment.objects.filter(annotator=user))
    assert len(rows) == len({j.pair_id for j in rows}), "a pair judged twice"
    return {j.pair_id: j.choice for j in rows}


def test_answers_given_while_the_server_answers_503_are_kept_shown_and_land_once_when_it_is_back(
    live_server, context, annotator_user, artifacts
):
    # Given an annotator on a queue whose page holds five pairs, one answer already stored
    queue, _, _ = ui_queue(n_pairs=10, prefetch=5)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    first, _ = labeling.press_and_advance("1")
    labeling.wait_until_waiting(0)
    answered = {first: "left"}

    # When every labeling call starts answering 503 database_unavailable with Retry-After
    submits: list[float] = []

    def database_down(route):
        if route.request.url.endswith(SUBMIT_PATH):
            submits.append(time.monotonic())
        route.fulfill(
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"},
            content_type="application/json",
            body=json.dumps(
                {"error": "database_unavailable", "detail": "The database cannot be reached."}
            ),
        )

    page.route(LABELING_CALLS, database_down)
    # Then the annotator keeps answering the pairs already on the page
    for key, choice in (("2", "right"), ("t", "tie"), ("b", "both_wrong")):
        pair, following = labeling.press_and_advance(key)
        answered[pair] = choice
    assert following is not None  # the last pair the page holds is on screen
    # And the page says the server is unavailable and that the three answers are kept
    page.wait_for_function("() => document.getElementById('offline').dataset.waiting === '3'")
    assert page.is_visible("#offline")
    assert page.inner_text("#offline") == (
        "The server is unavailable right now. 3 answers are kept in this browser and will be "
        "sent when it is back."
    )
    assert page.inner_text("#outbox-status") == (
        "3 answers waiting to be sent · server unavailable, retrying"
    )
    page.screenshot(path=str(artifacts / "labeling-page-offline.png"))
    # And it sends again no sooner than the server's Retry-After asks
    deadline = time.monotonic() + 20
    while len(submits) < 3:
        assert time.monotonic() < deadline, f"only {len(submits)} submit attempts"
        page.wait_for_timeout(100)
    gaps = [later - earlier for earlier, later in zip(submits, submits[1:], strict=False)]
    assert min(gaps) >= RETRY_AFTER_S * 0.95, gaps
    assert stored(annotator_user) == {first: "left"}

    # When the server answers again
    page.unroute(LABELING_CALLS)
    # Then every answer lands exactly once, and the notice goes away by itself
    labeling.wait_until_waiting(0)
    page.wait_for_selector("#offline", state="hidden")
    assert stored(annotator_user) == answered
    assert Judgment.objects.filter(annotator=annotator_user).count() == 4
    # And labeling goes on with new pairs
    pair, _ = labeling.press_and_advance("2")
    assert pair not in answered
    labeling.wait_until_waiting(0)
    assert stored(annotator_user)[pair] == "right"
    assert Judgment.objects.filter(annotator=annotator_user).count() == 5
