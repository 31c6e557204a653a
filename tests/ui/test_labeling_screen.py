"""The labeling page as a new annotator meets it: the instructions above the pair until
dismissed (and again when they change), images at their native size with zoom and hold-to-flip,
the session's count and the day's target, quiet secondary answers, and queues that ask more
than one question."""

import json

import pytest

from annotation.models import AnnotatorProfile, Judgment, LabelingQueue
from annotation.services.annotators import user_create
from config.roles import Role
from tests.ui.conftest import DESKTOP, sign_in
from tests.ui.factories import INSTRUCTIONS, queue_criteria_set, ui_queue
from tests.ui.labeling_page import SUBMIT, LabelingPage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMAGE_SIZES = """() => ['img-left', 'img-flip', 'img-right'].map(id => {
    const img = document.getElementById(id);
    const box = img.getBoundingClientRect();
    const frame = img.closest('.frame');
    return {id, natural: [img.naturalWidth, img.naturalHeight], shown: [box.width, box.height],
            visible: box.width > 0, frame: [frame.clientWidth, frame.clientHeight],
            src: img.src};
})"""
TWO_CRITERIA = [
    {"name": "spatial", "question": "Which image follows the prompt's spatial layout?"},
    {"name": "overall", "question": "Which image do you prefer overall?"},
]


@pytest.fixture
def annotator_user(db):
    return user_create(username="ann-screen", password="annotator-pass", role=Role.ANNOTATOR)


def sizes(page) -> dict[str, dict]:
    return {s["id"]: s for s in page.evaluate(IMAGE_SIZES)}


def test_instructions_show_above_the_pair_until_dismissed_and_again_when_they_change(
    live_server, context, annotator_user, artifacts
):
    # Given an annotator opening a queue for the first time
    queue, _, _ = ui_queue(n_pairs=4)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    page.screenshot(path=str(artifacts / "labeling-page-first-visit.png"))
    # Then the instructions are on the first screen, above the pair, with a button to close them
    panel = page.locator("#instructions").bounding_box()
    pair = page.locator("#pair").bounding_box()
    dismiss = page.locator("#dismiss-instructions").bounding_box()
    assert page.is_visible("#instructions")
    assert panel["y"] + panel["height"] <= pair["y"]
    assert dismiss["y"] + dismiss["height"] <= DESKTOP["height"]
    assert page.inner_text("#instructions strong") == "better"
    # When they dismiss them
    page.click("#dismiss-instructions")
    # Then they are gone, and stay gone after a reload
    assert not page.is_visible("#instructions")
    page.reload()
    labeling.wait_for_pair()
    assert not page.is_visible("#instructions")
    # And the Instructions button and the ? key open them again (Escape closes them)
    page.click("#toggle-instructions")
    assert page.is_visible("#instructions")
    assert page.get_attribute("#toggle-instructions", "aria-expanded") == "true"
    page.keyboard.press("Escape")
    assert not page.is_visible("#instructions")
    page.keyboard.press("?")
    assert page.is_visible("#instructions")
    page.keyboard.press("?")
    assert not page.is_visible("#instructions")

    # When the lead changes the queue's instructions
    LabelingQueue.objects.filter(pk=queue.pk).update(
        instructions=INSTRUCTIONS + "\n- **New**: count the objects too.\n"
    )
    page.reload()
    labeling.wait_for_pair()
    # Then they show again, the new text in them
    assert page.is_visible("#instructions")
    assert "count the objects too" in page.inner_text("#instructions")
    page.click("#dismiss-instructions")

    # And another annotator in the same browser sees them on their first visit
    other = user_create(username="ann-screen-2", password="annotator-pass", role=Role.ANNOTATOR)
    context.clear_cookies()
    sign_in(context, live_server, other)
    page.reload()
    labeling.wait_for_pair()
    assert page.is_visible("#instructions")


def test_images_show_at_native_size_zoom_doubles_them_and_holding_f_flips_the_left_frame(
    live_server, context, annotator_user, artifacts
):
    # Given a pair of 256 px images and frames larger than that
    queue, _, _ = ui_queue(n_pairs=3)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    labeling.images_loaded()
    page.click("#dismiss-instructions")
    shown = sizes(page)
    # Then each image is shown at its native size, not scaled up to the frame
    for side in ("img-left", "img-right"):
        s = shown[side]
        assert s["natural"] == [256, 256]
        assert s["frame"][0] > 300 and s["frame"][1] > 300
        assert s["shown"] == [256, 256], s
    assert not shown["img-flip"]["visible"]

    # When Z is pressed
    page.keyboard.press("z")
    # Then both images are twice that size, in frames that scroll together
    page.wait_for_function("() => document.getElementById('img-right').width === 512")
    shown = sizes(page)
    assert shown["img-left"]["shown"] == [512, 512]
    assert shown["img-right"]["shown"] == [512, 512]
    assert page.get_attribute("#zoom", "aria-pressed") == "true"
    page.screenshot(path=str(artifacts / "labeling-page-zoomed.png"))
    page.eval_on_selector(".frame[data-side=left]", "f => { f.scrollTop = 40; }")
    page.wait_for_function(
        "() => document.querySelector('.frame[data-side=right]').scrollTop === 40"
    )
    # And Z again (or Escape) shows them at native size again
    page.keyboard.press("z")
    assert sizes(page)["img-left"]["shown"] == [256, 256]
    # And a click on an image zooms in, another out
    page.click("#img-right")
    assert sizes(page)["img-right"]["shown"] == [512, 512]
    page.keyboard.press("Escape")
    assert sizes(page)["img-right"]["shown"] == [256, 256]

    # When F is held down
    page.keyboard.down("f")
    # Then the left frame shows the right image (at the same size), with a badge saying so
    shown = sizes(page)
    assert not shown["img-left"]["visible"]
    assert shown["img-flip"]["visible"]
    assert shown["img-flip"]["src"] == shown["img-right"]["src"]
    assert shown["img-flip"]["src"] != shown["img-left"]["src"]
    assert shown["img-flip"]["shown"] == [256, 256]
    assert page.is_visible(".flip-badge")
    page.screenshot(path=str(artifacts / "labeling-page-flipped.png"))
    # And once it is let go, the left image is back
    page.keyboard.up("f")
    shown = sizes(page)
    assert shown["img-left"]["visible"] and not shown["img-flip"]["visible"]
    # And pressing and holding the Flip button does the same
    page.hover("#flip")
    page.mouse.down()
    assert sizes(page)["img-flip"]["visible"]
    page.mouse.up()
    assert not sizes(page)["img-flip"]["visible"]

    # And on the next pair the flip image is that pair's right image
    labeling.press_and_advance("1")
    labeling.wait_for_pair()
    labeling.images_loaded()
    page.keyboard.down("f")
    shown = sizes(page)
    assert shown["img-flip"]["src"] == shown["img-right"]["src"]
    page.keyboard.up("f")
    assert Judgment.objects.filter(annotator=annotator_user).count() <= 1


def test_on_a_phone_images_larger_than_the_frame_shrink_to_fit_and_never_grow(
    live_server, phone_context, annotator_user
):
    # Given a phone, whose frames are lower than the 256 px images
    queue, _, _ = ui_queue(n_pairs=2)
    sign_in(phone_context, live_server, annotator_user)
    page = phone_context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    labeling.images_loaded()
    page.click("#dismiss-instructions")
    # Then each image fits its frame, no larger than its native size
    for side in ("img-left", "img-right"):
        s = sizes(page)[side]
        assert s["frame"][1] < 256
        assert s["shown"][0] <= min(256, s["frame"][0])
        assert s["shown"][1] <= min(256, s["frame"][1])
        assert s["shown"][1] >= s["frame"][1] - 1  # as large as the frame allows
    # And the zoom doubles what is shown
    before = sizes(page)["img-left"]["shown"]
    page.click("#zoom")
    after = sizes(page)["img-left"]["shown"]
    assert abs(after[0] - 2 * before[0]) <= 1 and abs(after[1] - 2 * before[1]) <= 1


def test_the_top_bar_counts_this_sessions_answers_and_the_days_against_the_target(
    live_server, context, annotator_user
):
    # Given an annotator with a daily target of 20
    AnnotatorProfile.objects.filter(user=annotator_user).update(daily_target=20)
    queue, _, _ = ui_queue(n_pairs=8)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    assert page.inner_text("#session-count") == "0"
    # When they answer three pairs
    for key in ("1", "2", "s"):
        labeling.press_and_advance(key)
    # Then the session counts three at once, and the day three of 20
    assert page.inner_text("#session-count") == "3"
    labeling.wait_until_waiting(0)
    page.wait_for_function("() => document.getElementById('done-today').textContent === '3'")
    assert page.inner_text("#daily-target") == "20"
    assert page.is_visible("#daily-target-of")
    assert page.eval_on_selector("#day-progress", "p => [p.value, p.max]") == [3, 20]
    # And an undone answer is taken off the session's count
    page.keyboard.press("u")
    page.wait_for_function("() => document.getElementById('session-count').textContent === '2'")
    # And a reload of the tab keeps the session's count
    page.reload()
    labeling.wait_for_pair()
    assert page.inner_text("#session-count") == "2"
    # And without a target the day shows its count alone
    AnnotatorProfile.objects.filter(user=annotator_user).update(daily_target=None)
    page.reload()
    labeling.wait_for_pair()
    page.wait_for_function("() => document.getElementById('done-today').textContent === '2'")
    assert not page.is_visible("#daily-target-of")
    assert not page.is_visible("#day-progress")


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_tie_both_wrong_and_skip_are_quieter_than_left_and_right(
    live_server, context, phone_context, annotator_user, viewport
):
    # Given the page on a desktop and on a phone
    queue, _, _ = ui_queue(n_pairs=1)
    ctx = context if viewport == "desktop" else phone_context
    sign_in(ctx, live_server, annotator_user)
    page = ctx.new_page()
    LabelingPage(page, live_server, queue).open().wait_for_pair()
    looks = page.eval_on_selector_all(
        "[data-choice]",
        """buttons => Object.fromEntries(buttons.map(b => {
            const style = getComputedStyle(b);
            const box = b.getBoundingClientRect();
            return [b.dataset.choice, {font: parseFloat(style.fontSize),
                    weight: Number(style.fontWeight), height: box.height, width: box.width}];
        }))""",
    )
    # Then left and right are larger and bolder than each of the others
    for main in ("left", "right"):
        for quiet in ("tie", "both_wrong", "skip"):
            assert looks[main]["font"] > looks[quiet]["font"], (main, quiet, looks)
            assert looks[main]["weight"] > looks[quiet]["weight"], (main, quiet, looks)
            assert looks[main]["height"] > looks[quiet]["height"], (main, quiet, looks)
            if viewport == "desktop":
                assert looks[main]["width"] > looks[quiet]["width"], (main, quiet, looks)


def test_a_queue_with_two_questions_gets_both_answered_before_one_submit(
    live_server, context, annotator_user, artifacts
):
    # Given a queue asking about the spatial layout (primary) and overall preference
    queue, _, _ = ui_queue(n_pairs=10)
    queue_criteria_set(queue, TWO_CRITERIA)
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    sent: list[dict] = []

    def record(route):
        sent.append(json.loads(route.request.post_data))
        route.continue_()

    page.route(SUBMIT, record)
    labeling = LabelingPage(page, live_server, queue).open()
    first = labeling.wait_for_pair()
    page.click("#dismiss-instructions")
    page.screenshot(path=str(artifacts / "labeling-page-two-criteria.png"), full_page=True)
    # Then each question shows with its own row of answers and keys
    questions = page.eval_on_selector_all(".question", "qs => qs.map(q => q.textContent)")
    assert questions == [c["question"] for c in TWO_CRITERIA]
    second_row = page.eval_on_selector_all(
        "[data-criterion=overall]",
        "bs => bs.map(b => [b.dataset.criterionChoice, b.querySelector('kbd').dataset.key])",
    )
    assert second_row == [["left", "j"], ["tie", "k"], ["right", "l"]]
    settings = json.loads(page.text_content("#label-settings"))
    assert settings["criteria"] == TWO_CRITERIA

    # When only the first question is answered
    page.keyboard.press("1")
    # Then the pair stays, its answer marked, and nothing is sent
    assert labeling.pair_on_screen() == first
    assert page.get_attribute("[data-choice=left]", "aria-pressed") == "true"
    assert labeling.waiting() == 0 and sent == []
    # And a second key for the same question replaces the answer
    page.keyboard.press("2")
    assert page.get_attribute("[data-choice=left]", "aria-pressed") == "false"
    assert page.get_attribute("[data-choice=right]", "aria-pressed") == "true"
    # When the second question is answered
    _, second = labeling.press_and_advance("l")
    # Then one submit carries both answers, and the next pair starts with none marked
    labeling.wait_until_waiting(0)
    assert [(b["pair"], b["choice"], b.get("criteria")) for b in sent] == [
        (first, "right", {"overall": "right"})
    ]
    assert page.eval_on_selector_all("[aria-pressed=true].answer", "bs => bs.length") == 0
    expected = {first: "right"}

    # And in the other order, by clicks
    labeling.wait_for_pair()
    page.click("[data-criterion=overall][data-criterion-choice=tie]")
    assert labeling.pair_on_screen() == second
    page.click("[data-choice=both_wrong]")
    third = labeling.wait_for_pair(other_than=second)
    expected[second] = "both_wrong"
    # And skip skips the whole pair, whatever was answered
    page.keyboard.press("j")
    fourth = labeling.press_and_advance("s")[1]
    expected[third] = "skip"
    labeling.wait_until_waiting(0)
    assert [(b["pair"], b["choice"], b.get("criteria")) for b in sent[1:]] == [
        (second, "both_wrong", {"overall": "tie"}),
        (third, "skip", None),
    ]

    # When an answer waits in the outbox (submits cut off) and the page is reloaded
    labeling.cut_submits()
    assert labeling.wait_for_pair() == fourth
    page.keyboard.press("k")
    labeling.press_and_advance("t")
    expected[fourth] = "tie"
    stored_entry = page.evaluate(
        "key => JSON.parse(localStorage.getItem(key))",
        f"spatialprefs:outbox:v1:{annotator_user.pk}",
    )
    # Then the outbox holds the second question's answer with the first
    assert [(e["pair"], e["choice"], e["criteria"]) for e in stored_entry] == [
        (fourth, "tie", {"overall": "tie"})
    ]
    page.reload()
    labeling.wait_for_pair()
    page.unroute(SUBMIT)
    page.route(SUBMIT, record)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    labeling.wait_until_waiting(0)
    assert (sent[-1]["pair"], sent[-1]["choice"], sent[-1]["criteria"]) == (
        fourth,
        "tie",
        {"overall": "tie"},
    )
    # And the primary answers are stored as the judgments' choices
    judged = Judgment.objects.filter(annotator=annotator_user)
    assert {j.pair_id: j.choice for j in judged} == expected


def test_a_queue_with_one_criterion_shows_its_question_and_submits_at_once(
    live_server, context, annotator_user
):
    # Given a queue whose one criterion names its question
    queue, _, _ = ui_queue(n_pairs=3)
    queue_criteria_set(queue, TWO_CRITERIA[:1])
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    sent: list[dict] = []
    page.route(
        SUBMIT,
        lambda route: (sent.append(json.loads(route.request.post_data)), route.continue_()),
    )
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    # Then the question shows above the answers, and no second row
    assert page.inner_text("#question-primary") == TWO_CRITERIA[0]["question"]
    assert page.locator("[data-criterion]").count() == 0
    # And one key answers the pair, without a criteria field
    pair, _ = labeling.press_and_advance("1")
    labeling.wait_until_waiting(0)
    assert [(b["pair"], b["choice"], "criteria" in b) for b in sent] == [(pair, "left", False)]
    # And the keys of a second question do nothing here
    on_screen = labeling.wait_for_pair()
    page.keyboard.press("j")
    assert labeling.pair_on_screen() == on_screen
    assert labeling.waiting() == 0 and len(sent) == 1


def test_a_missed_gold_pair_shows_its_explanation_in_a_queue_that_gives_feedback(
    live_server, context, annotator_user
):
    # Given a queue that gives feedback, whose every pair is gold (the lead's answer: image A)
    from annotation.services import quality

    queue, pairs, _ = ui_queue(n_pairs=3)
    LabelingQueue.objects.filter(pk=queue.pk).update(gold_rate=0.5, gold_feedback=True)
    for pair in pairs:
        quality.pair_gold_mark(
            pair_id=pair.pk,
            winner_id=pair.candidate_a_id,
            explanation="The cup is left of the plate in the other image.",
            by=None,
        )
    sign_in(context, live_server, annotator_user)
    page = context.new_page()
    labeling = LabelingPage(page, live_server, queue).open()
    labeling.wait_for_pair()
    # When the annotator answers "tie" (never the known answer)
    with page.expect_response(SUBMIT):
        page.keyboard.press("t")
    # Then the page says why, once the answer is stored
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.includes('other image')"
    )
    assert "Feedback" in page.inner_text("#notice")
