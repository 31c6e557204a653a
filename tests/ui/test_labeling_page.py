"""The annotator's labeling page in Chromium: keyboard labeling through a flaky network, the
keys the page announces, reload, undo, double presses, heartbeats, a phone-sized screen, and
nothing on the wire that names a model, a seed, a prompt's lineage or the intended winner."""

import json
import re
import time
import uuid

import pytest
from django.utils import timezone

from annotation.models import Assignment, Judgment, UndoneJudgment
from annotation.services.annotators import user_create
from config.roles import Role
from generation_workers.models import Candidate
from tests.ui.conftest import sign_in
from tests.ui.factories import MODEL_NAMES, ui_queue
from tests.ui.labeling_page import SUBMIT, LabelingPage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "annotator-pass"
LOADED_RESOURCES = (
    "() => performance.getEntriesByType('resource').filter(e => e.responseEnd > 0).map(e => e.name)"
)
PAIR_IMAGES = "/api/labeling/images/"


class ImageFetches:
    """The pair images the page has asked for and received (each reference is new, so each
    fetch is one image shown or buffered)."""

    def __init__(self, page) -> None:
        self.page = page
        self.asked: set[str] = set()
        self.done: set[str] = set()
        page.on("request", lambda r: PAIR_IMAGES in r.url and self.asked.add(r.url))
        page.on("requestfinished", lambda r: PAIR_IMAGES in r.url and self.done.add(r.url))
        page.on("requestfailed", lambda r: PAIR_IMAGES in r.url and self.done.add(r.url))

    def wait_until_settled(self, *, at_least: int, timeout_s: float = 15.0) -> None:
        """Until at least `at_least` images were asked for and every one asked for arrived."""
        deadline = time.monotonic() + timeout_s
        while not (len(self.asked) >= at_least and self.asked <= self.done):
            assert time.monotonic() < deadline, (len(self.asked), len(self.done), at_least)
            self.page.wait_for_timeout(25)


@pytest.fixture
def annotator_user(db):
    return user_create(username="ann-ui", password=PASSWORD, role=Role.ANNOTATOR)


def stored(user) -> dict[int, Judgment]:
    rows = list(Judgment.objects.filter(annotator=user))
    assert len(rows) == len({j.pair_id for j in rows}), "a pair judged twice"
    return {j.pair_id: j for j in rows}


def test_annotator_logs_in_and_labels_ten_pairs_by_keyboard_through_a_flaky_network(
    live_server, page, annotator_user, artifacts
):
    # Given a queue of 12 pairs and an annotator at the login page
    queue, pairs, _ = ui_queue(n_pairs=12)
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ann-ui")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    # When they pick the queue and label ten pairs with the keyboard, while some submits are
    # cut off and one is stored but its answer never comes back
    images = ImageFetches(page)
    page.click(f"a[href='/label/{queue.pk}/']")
    labeling = LabelingPage(page, live_server, queue)
    labeling.wait_for_pair()
    labeling.images_loaded()
    page.screenshot(path=str(artifacts / "labeling-page.png"))
    keys = ["1", "ArrowRight", "t", "b", "2", "ArrowLeft", "s", "1", "2", "t"]
    expected_choice = {
        "1": "left",
        "ArrowLeft": "left",
        "2": "right",
        "ArrowRight": "right",
        "t": "tie",
        "b": "both_wrong",
        "s": "skip",
    }
    answered: dict[int, str] = {}
    lost_response = {"done": False}

    def store_then_drop(route):
        # The server stores the answer; the browser never hears back.
        if not lost_response["done"]:
            lost_response["done"] = True
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    for i, key in enumerate(keys):
        if i == 3:
            labeling.cut_submits()
        if i == 7:
            labeling.restore_submits()
            page.route(SUBMIT, store_then_drop)
        labeling.wait_for_pair()
        # A person looks at a pair for a second or more; the page uses that time to fetch the
        # images of the pairs it buffers (on a loaded machine a thumbnail takes a few hundred
        # ms to make on first view). Wait, as a person would, until the images of at least one
        # pair after this one were asked for and all that were asked for arrived; then press.
        images.wait_until_settled(at_least=2 * (i + 1) + 2)
        fetched = set(page.evaluate(LOADED_RESOURCES))
        pair, nxt = labeling.press_and_advance(key)
        answered[pair] = expected_choice[key]
        # the next pair's images had been fetched before it appeared (prefetch)
        shown = page.eval_on_selector_all("#pair img", "imgs => imgs.map(i => i.src)")
        assert nxt is not None and set(shown) <= fetched, (i, shown)
        if i == 6:
            # Then the page says how many answers wait while the network is down
            assert labeling.waiting() >= 4
            assert re.search(r"\d+ answers waiting to be sent", page.inner_text("#outbox-status"))
    # Then, once the network is back, every answer is stored exactly once, as pressed
    labeling.wait_until_waiting(0)
    assert lost_response["done"] is True
    judgments = stored(annotator_user)
    assert {pid: j.choice for pid, j in judgments.items()} == answered
    assert len({j.client_submission_id for j in judgments.values()}) == 10
    assert set(answered) <= {p.pk for p in pairs}
    assert page.inner_text("#outbox-status") == "All answers saved"
    page.wait_for_function("() => document.getElementById('done-today').textContent === '10'")
    # (the skipped pair waits for someone else; two more are held for this annotator)
    assert page.inner_text("#left-in-queue") == "3"


def test_the_keys_the_page_announces_do_what_it_says(live_server, context, annotator_user):
    # Given a queue and the keys each answer button shows
    queue, _, _ = ui_queue(n_pairs=9)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    announced = page.eval_on_selector_all(
        "[data-choice]",
        "buttons => buttons.flatMap(b => [...b.querySelectorAll('kbd')].map("
        "k => [k.dataset.key, b.dataset.choice, b.innerText]))",
    )
    assert [(key, choice) for key, choice, _ in announced] == [
        ("1", "left"),
        ("ArrowLeft", "left"),
        ("t", "tie"),
        ("b", "both_wrong"),
        ("s", "skip"),
        ("2", "right"),
        ("ArrowRight", "right"),
    ]
    # When each announced key is pressed on a pair of its own
    expected = {}
    for key, choice, label in announced:
        pair, _ = labeling.press_and_advance(key)
        expected[pair] = choice
        # and a short flash names the answer given, as its button does
        assert page.get_attribute("#flash", "data-kind") == choice
        assert page.text_content("#flash") == label.splitlines()[0].strip()
    # Then each pair holds the answer the button names
    labeling.wait_until_waiting(0)
    assert {pid: j.choice for pid, j in stored(annotator_user).items()} == expected

    # And the reason-tag keys toggle the tags the page names, sent with the next answer
    pair = labeling.wait_for_pair()
    tag_keys = page.eval_on_selector_all(
        "[data-tag]", "tags => tags.map(t => [t.querySelector('kbd').dataset.key, t.dataset.tag])"
    )
    assert [tuple(t) for t in tag_keys] == [
        ("o", "object"),
        ("r", "relation"),
        ("a", "attribute"),
        ("c", "count"),
        ("q", "quality"),
        ("x", "other"),
    ]
    page.keyboard.press("r")
    page.keyboard.press("o")
    page.keyboard.press("q")
    page.keyboard.press("q")  # toggles back off
    assert page.get_attribute("[data-tag=relation]", "aria-pressed") == "true"
    assert page.get_attribute("[data-tag=quality]", "aria-pressed") == "false"
    # and a click on the highlighted relation phrase tags that relation of the prompt
    page.click("#prompt mark.rel")
    assert page.get_attribute("#prompt mark.rel", "aria-pressed") == "true"
    labeling.press_and_advance("b")
    labeling.wait_until_waiting(0)
    assert stored(annotator_user)[pair].reason_tags == ["relation", "object", "relation:0"]

    # And each tool button announces the keys of the page's table, and they do what it says
    tools = page.eval_on_selector_all(
        "[data-tool]",
        "buttons => buttons.map(b => [b.dataset.tool, [...b.querySelectorAll('kbd')].map("
        "k => k.dataset.key)])",
    )
    assert dict(tools) == {
        "undo": ["u"],
        "zoom": ["z"],
        "flip": ["f"],
        "instructions": ["?", "i"],
    }
    for key in ("?", "i"):
        opened = page.is_visible("#instructions")
        page.keyboard.press(key)
        assert page.is_visible("#instructions") is (not opened)
    assert page.is_visible("#instructions")
    page.keyboard.press("z")
    assert page.get_attribute("#label-app", "data-zoom") == "on"
    # (Escape closes the instructions first, then the zoom)
    page.keyboard.press("Escape")
    assert not page.is_visible("#instructions")
    assert page.get_attribute("#label-app", "data-zoom") == "on"
    page.keyboard.press("Escape")
    assert page.get_attribute("#label-app", "data-zoom") == "off"
    page.keyboard.down("f")
    assert page.get_attribute("#label-app", "data-flip") == "on"
    page.keyboard.up("f")
    assert page.get_attribute("#label-app", "data-flip") == "off"


def test_prompt_shows_its_spatial_phrase_highlighted_and_instructions_rendered_safely(
    live_server, context, annotator_user
):
    # Given a queue whose instructions carry markdown, a script tag and a javascript: link
    queue, _, _ = ui_queue(n_pairs=2)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    LabelingPage(page, live_server, queue).open().wait_for_pair()
    # Then the relation phrase of the prompt is highlighted, and its objects marked
    prompt = page.inner_text("#prompt")
    relation = page.inner_text("#prompt mark.rel")
    assert relation in prompt
    assert relation in {"to the left of", "to the right of", "above", "below", "on top of"}
    objects = page.eval_on_selector_all("#prompt .obj", "els => els.map(e => e.textContent)")
    assert len(objects) == 2 and all(o in prompt for o in objects)
    # And the instructions are rendered markdown where nothing runs or links to script
    assert page.inner_text("#instructions strong") == "better"
    assert page.evaluate("window.injected") is None
    assert "<script>window.injected = true</script>" in page.inner_text("#instructions")
    hrefs = page.eval_on_selector_all("#instructions a", "links => links.map(a => a.href)")
    assert hrefs == ["https://example.org/guide"]


def test_a_reload_mid_queue_resumes_with_the_waiting_answers_kept(
    live_server, context, annotator_user
):
    # Given an annotator who answered three pairs while submits could not get through
    queue, _, _ = ui_queue(n_pairs=8)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    labeling.cut_submits()
    answered = {}
    for key, choice in (("1", "left"), ("2", "right"), ("t", "tie")):
        pair, _ = labeling.press_and_advance(key)
        answered[pair] = choice
    on_screen = labeling.wait_for_pair()
    assert labeling.waiting() == 3
    assert Judgment.objects.count() == 0
    # When the page is reloaded (still cut off)
    page.reload()
    # Then the same pair is back on screen and the three answers still wait
    assert labeling.wait_for_pair() == on_screen
    assert labeling.waiting() == 3
    assert "3 answers waiting to be sent" in page.inner_text("#outbox-status")
    # And once the network is back they are stored, once each, and labeling goes on
    labeling.restore_submits()
    labeling.wait_until_waiting(0)
    assert {pid: j.choice for pid, j in stored(annotator_user).items()} == answered
    pair, _ = labeling.press_and_advance("b")
    assert pair == on_screen
    labeling.wait_until_waiting(0)
    assert stored(annotator_user)[on_screen].choice == "both_wrong"
    assert Judgment.objects.count() == 4


def test_double_click_and_double_key_answer_once(live_server, context, annotator_user):
    # Given a pair on screen
    queue, _, _ = ui_queue(n_pairs=6)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    first = labeling.wait_for_pair()
    # When the Left button is double-clicked
    page.dblclick("button[data-choice=left]")
    second = labeling.wait_for_pair(other_than=first)
    # And the next pair gets the T key twice in a row
    page.keyboard.press("t")
    page.keyboard.press("t")
    third = labeling.wait_for_pair(other_than=second)
    labeling.wait_until_waiting(0)
    # Then each pair got one answer and the pair now on screen none
    judgments = stored(annotator_user)
    assert {pid: j.choice for pid, j in judgments.items()} == {first: "left", second: "tie"}
    assert third not in judgments


def test_undo_takes_back_the_last_answer_sent_or_still_waiting(
    live_server, context, annotator_user
):
    # Given an annotator whose last answer reached the server
    queue, _, _ = ui_queue(n_pairs=6)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    first, second = labeling.press_and_advance("1")
    labeling.wait_until_waiting(0)
    assert set(stored(annotator_user)) == {first}
    # When they press U
    page.keyboard.press("u")
    # Then the pair is back on screen and its judgment gone (kept as undone)
    assert labeling.wait_for_pair(other_than=second) == first
    assert stored(annotator_user) == {}
    assert UndoneJudgment.objects.filter(pair_id=first, annotator=annotator_user).count() == 1
    # And answering it again stores the new answer
    labeling.press_and_advance("2")
    # Given an answer that is still waiting in the browser (submits cut off)
    labeling.wait_until_waiting(0)
    labeling.cut_submits()
    pair, nxt = labeling.press_and_advance("t")
    assert labeling.waiting() == 1
    # When it is undone with the Undo button
    page.click("#undo")
    # Then it never reaches the server, and the pair is back on screen
    assert labeling.wait_for_pair(other_than=nxt) == pair
    labeling.wait_until_waiting(0)
    labeling.restore_submits()
    assert {pid: j.choice for pid, j in stored(annotator_user).items()} == {first: "right"}


def test_heartbeats_renew_the_lease_of_the_pairs_on_screen(live_server, context, annotator_user):
    # Given a queue with short leases (a heartbeat every third of one)
    queue, _, _ = ui_queue(n_pairs=3, lease_seconds=12)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    pair = labeling.wait_for_pair()
    before = Assignment.objects.get(pair_id=pair, annotator=annotator_user).expires_at
    # When the pair stays on screen past a heartbeat
    with page.expect_response("**/heartbeat/") as response_info:
        pass
    response = response_info.value
    # Then the lease reaches further, and the page still holds it
    body = response.json()
    assert pair in [r["pair"] for r in body["renewed"]]
    assert body["lost"] == []
    after = Assignment.objects.get(pair_id=pair, annotator=annotator_user).expires_at
    assert after > before
    assert after > timezone.now()


def test_a_phone_sized_screen_stacks_the_images(
    live_server, phone_context, annotator_user, artifacts
):
    # Given a phone-sized viewport
    queue, _, _ = ui_queue(n_pairs=2)
    sign_in(phone_context, live_server, annotator_user)
    page = phone_context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    labeling.images_loaded()
    page.screenshot(path=str(artifacts / "labeling-page-phone.png"), full_page=True)
    # Then the right image sits below the left one, each about as wide as the screen
    left = page.locator("figure[data-side=left]").bounding_box()
    right = page.locator("figure[data-side=right]").bounding_box()
    assert right["y"] >= left["y"] + left["height"]
    assert abs(right["x"] - left["x"]) < 1
    assert left["width"] > 0.85 * 390
    assert page.inner_text("figure[data-side=right] figcaption") == "2 Bottom"
    # And a desktop-sized one shows them side by side
    page.set_viewport_size({"width": 1280, "height": 800})
    left = page.locator("figure[data-side=left]").bounding_box()
    right = page.locator("figure[data-side=right]").bounding_box()
    assert abs(right["y"] - left["y"]) < 1
    assert right["x"] >= left["x"] + left["width"]


def test_nothing_the_page_receives_names_a_model_seed_lineage_or_intended_winner(
    live_server, context, annotator_user
):
    # Given counterfactual pairs (an intended winner each) and same-prompt pairs
    queue, pairs, perturbed = ui_queue(n_pairs=3, counterfactual=3)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    bodies: list[tuple[str, str]] = []

    def keep(response):
        kind = response.headers.get("content-type", "")
        if "json" in kind or "html" in kind:
            bodies.append((response.url, response.text()))
        else:
            bodies.append((response.url, ""))

    page.on("response", keep)
    # When the annotator opens their home page, labels the counterfactual pairs (and takes
    # one answer back)
    page.goto(f"{live_server.url}/")
    bodies.append((page.url, page.content()))
    labeling = LabelingPage(page, live_server, queue).open()
    for key in ("1", "2"):
        labeling.press_and_advance(key)
    labeling.wait_until_waiting(0)
    page.keyboard.press("u")
    labeling.wait_for_pair()
    labeling.press_and_advance("2")
    labeling.wait_until_waiting(0)
    page.wait_for_load_state("networkidle")  # every answer the page asked for is in `bodies`
    bodies.append((page.url, page.content()))
    # Then no page, API answer or URL carries a model name, a seed, lineage or the winner
    secrets = [
        *MODEL_NAMES,
        *(str(seed) for seed in Candidate.objects.values_list("seed", flat=True)),
        *(p.text for p in perturbed),
        "intended",
        "winner",
        "seed",
        "perturb",
        "lineage",
        "generator",
        "model",
        "gold",
    ]
    api = [url for url, _ in bodies if "/api/labeling/" in url]
    assert any(url.endswith("/next/") for url in api)
    assert any(url.endswith("/undo/") for url in api)
    assert any("/api/labeling/images/" in url for url in api)
    for url, text in bodies:
        for secret in secrets:
            assert secret.lower() not in url.lower(), (secret, url)
            assert secret.lower() not in text.lower(), (secret, url)
    # And the pairs shown were counterfactual ones, judged against the original prompt
    items = [
        item for url, text in bodies if url.endswith("/next/") for item in json.loads(text)["items"]
    ]
    counterfactual = {p.pk: p for p in pairs if p.kind == "counterfactual"}
    shown = [item for item in items if item["pair"] in counterfactual]
    assert shown
    for item in shown:
        assert item["prompt"]["text"] == counterfactual[item["pair"]].prompt.text
        assert set(item) == {"pair", "prompt", "left", "right", "lease_expires_at"}


def test_a_submission_id_is_a_uuid_made_once_per_answer(live_server, context, annotator_user):
    # Given submits recorded as they leave the browser, the first one cut off twice
    queue, _, _ = ui_queue(n_pairs=4)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    sent: list[dict] = []
    cut = {"left": 2}

    def record(route):
        sent.append(json.loads(route.request.post_data))
        if cut["left"]:
            cut["left"] -= 1
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(SUBMIT, record)
    labeling = LabelingPage(page, live_server, queue).open()
    # When two pairs are answered
    first, _ = labeling.press_and_advance("1")
    second, _ = labeling.press_and_advance("2")
    labeling.wait_until_waiting(0)
    # Then the retries of the first answer carried its id, and each answer had its own
    ids = [(body["pair"], body["client_submission_id"]) for body in sent]
    assert [pair for pair, _ in ids] == [first, first, first, second]
    assert len({sid for pair, sid in ids if pair == first}) == 1
    assert len({sid for _, sid in ids}) == 2
    assert all(uuid.UUID(sid).version == 4 for _, sid in ids)
    assert {j.client_submission_id for j in stored(annotator_user).values()} == {
        uuid.UUID(sid) for _, sid in ids
    }


def test_the_last_pair_answered_leaves_an_empty_queue_message_and_undo_brings_it_back(
    live_server, context, annotator_user
):
    # Given a queue of two pairs, both answered
    queue, _, _ = ui_queue(n_pairs=2)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.press_and_advance("1")
    last, nothing = labeling.press_and_advance("2")
    # Then the page says there is nothing left, and takes no answer
    assert nothing is None
    page.wait_for_selector("#label-app[data-state=empty]")
    assert "Nothing left for you in this queue" in page.inner_text("#state-message")
    assert page.is_disabled("button[data-choice=left]")
    page.keyboard.press("1")
    labeling.wait_until_waiting(0)
    assert len(stored(annotator_user)) == 2
    # And undo brings the last pair back to answer again
    page.keyboard.press("u")
    assert labeling.wait_for_pair() == last
    labeling.press_and_advance("t")
    labeling.wait_until_waiting(0)
    assert stored(annotator_user)[last].choice == "tie"


def test_a_lead_watches_the_queue_fill_up_while_an_annotator_labels(
    live_server, browser, context, annotator_user, artifacts
):
    # Given an annotator who labels three pairs, agreeing on a counterfactual one
    queue, _, _ = ui_queue(n_pairs=3, counterfactual=1)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    for key in ("1", "2", "t"):
        labeling.press_and_advance(key)
    labeling.wait_until_waiting(0)
    # When a lead opens the queue from their home page
    lead = user_create(username="lead-ui", password="lead-pass-123", role=Role.LEAD)
    lead_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        sign_in(lead_context, live_server, lead)
        lead_page = lead_context.new_page()
        lead_page.goto(f"{live_server.url}/")
        lead_page.click(f"a[href='/leads/queues/{queue.pk}/']")
        lead_page.screenshot(path=str(artifacts / "queue-dashboard.png"), full_page=True)
        # Then they see the pairs done, the hour's judgments and the annotator's count
        assert lead_page.inner_text("[data-figure=complete]") == "3"
        assert lead_page.inner_text("[data-figure=last_hour]") == "3"
        assert lead_page.inner_text("tr[data-annotator=ann-ui] [data-col=judgments]") == "3"
        assert lead_page.inner_text("[data-figure=agreement]") in {"0%", "100%"}
    finally:
        lead_context.close()
    # And the annotator cannot open it
    response = page.goto(f"{live_server.url}/leads/queues/{queue.pk}/")
    assert response.status == 403


def test_answers_given_after_the_session_ends_wait_until_the_annotator_logs_in_again(
    live_server, context, annotator_user
):
    # Given an annotator labeling, whose session then ends (cookies gone)
    queue, _, _ = ui_queue(n_pairs=6)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    first, _ = labeling.press_and_advance("1")
    labeling.wait_until_waiting(0)
    context.clear_cookies()
    # When they answer the next pair
    second, _ = labeling.press_and_advance("2")
    # Then the answer waits and the page asks them to log in again
    page.wait_for_function(
        "() => document.getElementById('outbox-status').textContent.includes('log in again')"
    )
    assert labeling.waiting() == 1
    assert set(stored(annotator_user)) == {first}
    # When they log in again in another tab and answer one more pair here
    login = context.new_page()
    login.goto(f"{live_server.url}/accounts/login/")
    login.fill("#id_username", "ann-ui")
    login.fill("#id_password", PASSWORD)
    login.click("button[type=submit]")
    login.wait_for_url(f"{live_server.url}/")
    login.close()
    third, _ = labeling.press_and_advance("t")
    # Then both waiting answers are stored, once each
    labeling.wait_until_waiting(0)
    assert {pid: j.choice for pid, j in stored(annotator_user).items()} == {
        first: "left",
        second: "right",
        third: "tie",
    }
