"""The labeling page while the server answers 503 (its database is down): the annotator keeps
labeling the pairs already on the page, the page says the server is unavailable and how many
answers it keeps, retries when the server's Retry-After says, and once the server answers again
every answer lands exactly once. (tests/foundation/test_database_outage.py shows the server's
side of a real outage; here the browser sees one through routed API calls.)"""

import json

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
RETRY_AFTER_S = 30
INPUT_COOLDOWN_MS = 200  # main.js: a key this soon after a pair appears is ignored


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
    page.clock.install()  # the page's timers run on a clock this test can stop and advance
    labeling = LabelingPage(page, live_server, queue).open()
    first, _ = labeling.press_and_advance("1")
    labeling.wait_until_waiting(0)
    answered = {first: "left"}

    # When every labeling call starts answering 503 database_unavailable with Retry-After
    submits: list[str] = []

    def database_down(route):
        if route.request.url.endswith(SUBMIT_PATH):
            submits.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"},
            content_type="application/json",
            body=json.dumps(
                {"error": "database_unavailable", "detail": "The database cannot be reached."}
            ),
        )

    def requests_seen() -> None:
        # a request of the test's own through the same route: once it is answered, every
        # request the page started before it has reached the route too
        page.evaluate(
            "url => fetch(url).then(r => r.status)", f"/api/labeling/queues/{queue.pk}/progress/"
        )

    page.route(LABELING_CALLS, database_down)
    # (the page's time stands still from here: only the test moves it)
    page.clock.pause_at(page.evaluate("Date.now()") + 50)
    # Then the annotator keeps answering the pairs already on the page
    for key, choice in (("2", "right"), ("t", "tie"), ("b", "both_wrong")):
        page.clock.run_for(INPUT_COOLDOWN_MS)  # a person looks at the pair before answering
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
    # And it sends again no sooner than the server's Retry-After asks (and not much later)
    assert len(submits) == 1
    page.clock.run_for(RETRY_AFTER_S * 1000 - 1)
    requests_seen()
    assert len(submits) == 1
    page.clock.run_for(RETRY_AFTER_S * 1000 // 5 + 1)  # the page adds up to a fifth, at random
    requests_seen()
    assert len(submits) == 2
    assert stored(annotator_user) == {first: "left"}

    # When the server answers again (and the page's next try is due: its time flows again)
    page.unroute(LABELING_CALLS)
    page.clock.run_for(RETRY_AFTER_S * 1200 + 1)
    page.clock.resume()
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
