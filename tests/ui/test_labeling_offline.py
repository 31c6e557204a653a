"""The labeling page while the server answers 503 (its database is down): the annotator keeps
labeling the pairs already on the page, the page says the server is unavailable and how many
answers it keeps, retries when the server's Retry-After says, and once the server answers again
every answer lands exactly once. (tests/foundation/test_database_outage.py shows the server's
side of a real outage; here the browser sees one through routed API calls.) And while the
browser itself is offline: the page says the last answer is saved here, and asks for the next
pair as soon as the network is back."""

import json
import time

import pytest

from annotation.models import Judgment
from annotation.services.annotators import user_create
from config.roles import Role
from tests.ui.conftest import sign_in
from tests.ui.factories import ui_queue
from tests.ui.labeling_page import NEXT, LabelingPage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# next, submit, heartbeat, undo and progress of the labeling API (not its images).
LABELING_CALLS = "**/api/labeling/queues/*/*/"
SUBMIT_PATH = "/submit/"
RETRY_AFTER_S = 30
INPUT_COOLDOWN_MS = 200  # main.js: a key this soon after a pair appears is ignored
PROBE_S = 5  # main.js PROBE_MS: while the server is unavailable, the page asks this often


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
        "The server is unavailable right now. Your last answer is saved in this browser. "
        "3 answers waiting here will be sent when the server is back."
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


def test_while_the_browser_is_offline_the_page_says_the_last_answer_is_saved_here(
    live_server, context, annotator_user, artifacts
):
    # Given an annotator with pairs on the page
    queue, _, _ = ui_queue(n_pairs=6, prefetch=3)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    # When the browser goes offline
    context.set_offline(True)
    # Then the page says so at once, before anything failed
    page.wait_for_selector("#offline", state="visible")
    assert page.inner_text("#offline") == (
        "You are offline. Your answers are kept in this browser and will be sent when the "
        "network is back."
    )
    # And after an answer, that it is saved in this browser
    answered = {}
    pair, _ = labeling.press_and_advance("1")
    answered[pair] = "left"
    assert page.inner_text("#offline") == (
        "You are offline. Your last answer is saved in this browser. It will be sent when the "
        "network is back."
    )
    pair, _ = labeling.press_and_advance("2")
    answered[pair] = "right"
    assert page.inner_text("#offline") == (
        "You are offline. Your last answer is saved in this browser. 2 answers waiting here "
        "will be sent when the network is back."
    )
    page.screenshot(path=str(artifacts / "labeling-page-browser-offline.png"))
    # When the network is back, both land and the notice goes
    context.set_offline(False)
    labeling.wait_until_waiting(0)
    page.wait_for_selector("#offline", state="hidden")
    assert stored(annotator_user) == answered


def test_the_next_pair_is_asked_for_as_soon_as_the_network_is_back(
    live_server, context, annotator_user
):
    # Given a page that holds one pair at a time, whose request for the next pair failed when
    # the network dropped (the answer itself got through)
    queue, _, _ = ui_queue(n_pairs=4, prefetch=1)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    page.clock.install()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    page.route(NEXT, lambda route: route.abort("internetdisconnected"))
    first, nothing = labeling.press_and_advance("1")
    assert nothing is None
    labeling.wait_until_waiting(0)
    page.wait_for_function(
        "() => document.getElementById('state-message').textContent.includes('Connection lost')"
    )
    # (from here the page's time stands still: its backoff and its probe of the server never
    # run out, so only the browser's `online` event can bring the next pair)
    page.clock.pause_at(page.evaluate("Date.now()") + 50)
    context.set_offline(True)
    page.unroute(NEXT)
    page.wait_for_selector("#offline", state="visible")
    # When the network comes back
    started = time.monotonic()
    context.set_offline(False)
    # Then the next pair is on screen at once: no time passed on the page's clock, which the
    # old wait (its backoff: 2 s and more; its server probe: 5 s) needed
    page.wait_for_function("() => Boolean(document.getElementById('label-app').dataset.pair)")
    waited = time.monotonic() - started
    assert waited < PROBE_S, waited
    page.clock.run_for(INPUT_COOLDOWN_MS)
    second = labeling.wait_for_pair()
    assert second != first
    page.wait_for_selector("#offline", state="hidden")
    page.clock.resume()
    labeling.press_and_advance("2")
    labeling.wait_until_waiting(0)
    assert stored(annotator_user) == {first: "left", second: "right"}
