"""The pages without a browser: who reaches what, the lead's queue view and its figures, the
labeling page's shell, and the instructions' markdown rendered safely."""

import json
import re
import uuid

import pytest
from django.test import Client

from annotation.models import Assignment, Judgment, LabelingQueue
from annotation.services.annotators import user_create
from annotation.services.assignment import pairs_next_for_annotator
from annotation.services.judgments import REASON_TAG_KINDS, judgment_submit
from annotation.services.queues import labeling_queue_create, labeling_queue_pause
from config.roles import Role
from frontend.instructions import instructions_render
from frontend.views import CHOICE_KEYS, CRITERION_KEYS, REASON_TAG_KEYS, TOOL_KEYS
from tests.ui.factories import MODEL_NAMES, ui_queue

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


def row(html: str, username: str) -> dict[str, str]:
    block = re.search(rf'<tr data-annotator="{username}">(.*?)</tr>', html, re.S)
    assert block, username
    return dict(re.findall(r'data-col="(\w+)">([^<]*)<', block.group(1)))


def answer(user, queue, pair, choice):
    return judgment_submit(
        user=user, queue_id=queue.pk, pair_id=pair.pk, client_submission_id=uuid.uuid4(),
        choice=choice,
    )  # fmt: skip


def side_of(user, pair, candidate_id) -> str:
    lease = Assignment.objects.get(pair=pair, annotator=user)
    return "left" if lease.left_candidate_id == candidate_id else "right"


def other(side: str) -> str:
    return "right" if side == "left" else "left"


# --- Who reaches what ---------------------------------------------------------------------


def test_pages_send_anonymous_visitors_to_the_login_page(client):
    queue, _, _ = ui_queue(n_pairs=1)
    for url in ("/", "/label/", f"/label/{queue.pk}/", f"/leads/queues/{queue.pk}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_queue_view_is_for_leads_only(annotator, lead, ml_engineer):
    # Given a queue
    queue, _, _ = ui_queue(n_pairs=1)
    url = f"/leads/queues/{queue.pk}/"
    # Then an annotator and an ML engineer are refused, a lead sees it
    for user in (annotator, ml_engineer):
        response = client_of(user).get(url)
        assert response.status_code == 403
        assert b"the queue dashboards are for leads" in response.content
        assert b"data-figure" not in response.content
    response = client_of(lead).get(url)
    assert response.status_code == 200
    assert figure(response.content.decode(), "total") == "1"
    # And an unknown queue is a 404 for the lead
    assert client_of(lead).get("/leads/queues/999999/").status_code == 404


def test_home_lists_an_annotators_queues_and_a_leads_dashboards(annotator, lead):
    queue, _, _ = ui_queue(n_pairs=1)
    LabelingQueue.objects.create(name="not-for-annotators")
    home = client_of(annotator).get("/").content.decode()
    assert f'href="/label/{queue.pk}/"' in home
    assert "not-for-annotators" not in home
    assert "/leads/queues/" not in home
    lead_home = client_of(lead).get("/").content.decode()
    assert f'href="/leads/queues/{queue.pk}/"' in lead_home
    assert "not-for-annotators" in lead_home


def test_label_goes_to_the_annotators_one_queue_else_to_the_list_of_their_queues(annotator):
    client = client_of(annotator)
    # with no queue open to them: the list, which says so
    assert client.get("/label/")["Location"] == "/"
    # with exactly one: straight to it
    queue = labeling_queue_create(name="only", allowed_group_names=["annotator"])
    LabelingQueue.objects.create(name="not-theirs")
    one = client.get("/label/")
    assert (one.status_code, one["Location"]) == (302, f"/label/{queue.pk}/")
    assert client.get(one["Location"]).status_code == 200
    # with two: the list to choose from
    labeling_queue_create(name="second", allowed_users=[annotator], allowed_group_names=[])
    two = client.get("/label/")
    assert (two.status_code, two["Location"]) == (302, "/")
    # a paused queue is not one they can label now
    labeling_queue_pause(queue_id=queue.pk)
    assert client.get("/label/")["Location"] == (
        f"/label/{LabelingQueue.objects.get(name='second').pk}/"
    )


def test_labeling_page_refuses_a_foreign_paused_or_unknown_queue(annotator):
    # Given a queue the annotator may not label, and one that is paused
    closed = LabelingQueue.objects.create(name="closed")
    queue, _, _ = ui_queue(n_pairs=1)
    labeling_queue_pause(queue_id=queue.pk)
    client = client_of(annotator)
    # Then each gets its own status and a message that says why
    response = client.get(f"/label/{closed.pk}/")
    assert response.status_code == 403
    assert b"you are not one of this queue&#x27;s annotators" in response.content
    response = client.get(f"/label/{queue.pk}/")
    assert response.status_code == 409
    assert b"this queue is paused" in response.content
    assert client.get("/label/999999/").status_code == 404
    assert Assignment.objects.count() == 0


def test_labeling_page_hands_the_script_its_queue_keys_and_relation_phrases(annotator):
    # Given a queue
    queue, _, _ = ui_queue(n_pairs=1, prefetch=4, lease_seconds=300)
    # When the annotator opens its page
    response = client_of(annotator).get(f"/label/{queue.pk}/")
    # Then the page sets the CSRF cookie the script sends back, and describes the queue
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    html = response.content.decode()
    settings = json.loads(
        re.search(r'<script id="label-settings" type="application/json">(.*?)</script>', html, re.S)
        .group(1)
    )  # fmt: skip
    assert settings["queue"] == {
        "id": queue.pk, "prefetch": 4, "lease_seconds": 300, "max_prefetch": 20,
    }  # fmt: skip
    assert settings["urls"]["submit"] == f"/api/labeling/queues/{queue.pk}/submit/"
    assert settings["urls"]["next"] == f"/api/labeling/queues/{queue.pk}/next/"
    assert [c["choice"] for c in settings["choices"]] == [
        "left", "tie", "both_wrong", "skip", "right",
    ]  # fmt: skip
    assert {t["tag"] for t in settings["tags"]} == set(REASON_TAG_KINDS)
    assert "to the left of" in settings["relations"]["left_of"]
    assert "on top of" in settings["relations"]["on_top_of"]
    # And no pair data is in the page itself: the script leases pairs through the API
    assert Assignment.objects.count() == 0
    for name in MODEL_NAMES:
        assert name not in html


def test_every_key_the_page_announces_is_unique():
    keys = [k["key"].lower() for c in CHOICE_KEYS for k in c["keys"]]
    keys += [k["key"].lower() for row in CRITERION_KEYS for c in row for k in c["keys"]]
    keys += [t["key"] for t in REASON_TAG_KEYS]
    keys += [k["key"].lower() for tool in TOOL_KEYS.values() for k in tool]
    assert "q" in keys and "j" in keys and "f" in keys
    assert len(keys) == len(set(keys))


# --- The lead's queue view ----------------------------------------------------------------


def test_queue_view_counts_pairs_throughput_annotators_and_agreement(lead):
    # Given a queue (overlap 2) of 5 same-prompt and 2 counterfactual pairs
    queue, pairs, _ = ui_queue(n_pairs=5, counterfactual=2, overlap=2)
    cf1, cf2, same1, same2, same3, same4, same5 = pairs
    assert [p.kind for p in pairs] == ["counterfactual"] * 2 + ["same_prompt"] * 5
    ann1 = user_create(username="ann-one", password="annotator-pass", role=Role.ANNOTATOR)
    ann2 = user_create(username="ann-two", password="annotator-pass", role=Role.ANNOTATOR)
    # ann1 holds six pairs: agrees on cf1, not on cf2, answers three more, keeps same4 held
    held = pairs_next_for_annotator(user=ann1, queue_id=queue.pk, count=6)
    assert [i.pair_id for i in held] == [p.pk for p in pairs[:6]]
    answer(ann1, queue, cf1, side_of(ann1, cf1, cf1.intended_winner_id))
    answer(ann1, queue, cf2, other(side_of(ann1, cf2, cf2.intended_winner_id)))
    answer(ann1, queue, same1, "left")
    answer(ann1, queue, same2, "skip")
    answer(ann1, queue, same3, "tie")
    # ann2 agrees on both counterfactual pairs
    held = pairs_next_for_annotator(user=ann2, queue_id=queue.pk, count=2)
    assert [i.pair_id for i in held] == [cf1.pk, cf2.pk]
    for pair in (cf1, cf2):
        answer(ann2, queue, pair, side_of(ann2, pair, pair.intended_winner_id))
    sides = list(
        Judgment.objects.filter(choice__in=["left", "right"]).values_list("choice", flat=True)
    )

    # When the lead opens the queue view
    response = client_of(lead).get(f"/leads/queues/{queue.pk}/")
    html = response.content.decode()

    # Then: complete cf1, cf2; open same2 (only skipped) and same5; the rest in progress
    assert response.status_code == 200
    assert figure(html, "total") == "7"
    assert figure(html, "complete") == "2"
    assert figure(html, "open") == "2"
    assert figure(html, "in_progress") == "3"
    assert figure(html, "held_now") == "1"
    assert figure(html, "last_hour") == "7"
    assert figure(html, "per_hour_24h") == "0.3"
    # 3 of the 4 left/right answers on counterfactual pairs chose the intended winner
    assert figure(html, "agreement") == "75%"
    assert 'data-choice-count="tie">1<' in html
    assert 'data-choice-count="skip">1<' in html
    assert f'data-choice-count="left">{sides.count("left")}<' in html
    assert f'data-choice-count="right">{sides.count("right")}<' in html
    assert row(html, "ann-one") == {
        "judgments": "4", "skips": "1", "today": "5", "agreement": "50% (1/2)",
    }  # fmt: skip
    assert row(html, "ann-two") == {
        "judgments": "2", "skips": "0", "today": "2", "agreement": "100% (2/2)",
    }  # fmt: skip
    # And the lead view shows no model names either (it is about people and pairs)
    for name in MODEL_NAMES:
        assert name not in html


def test_queue_view_of_an_empty_queue_says_so(lead):
    queue = LabelingQueue.objects.create(name="empty")
    html = client_of(lead).get(f"/leads/queues/{queue.pk}/").content.decode()
    assert figure(html, "total") == "0"
    assert figure(html, "last_hour") == "0"
    assert "No left/right answers on counterfactual pairs yet (0 counterfactual pairs" in html
    assert "No answers yet." in html


# --- Instructions -------------------------------------------------------------------------


def test_instructions_markdown_renders_without_markup_scripts_or_foreign_images():
    html = instructions_render(
        markdown=(
            "# Rules\n\nPick the **better** image.\n\n<script>alert(1)</script>\n\n"
            "<img src=x onerror=alert(1)>\n\n"
            "[guide](https://example.org/g) [js](javascript:alert(1)) [site](/help/)\n\n"
            "![good](example:left-ok) ![unknown](example:nope) ![tracker](https://t.example/p.gif)"
        ),
        example_urls={"left-ok": "/api/labeling/queues/1/examples/left-ok/"},
    )
    assert "<h1>Rules</h1>" in html
    assert "<strong>better</strong>" in html
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<a href="https://example.org/g" target="_blank" rel="noopener noreferrer">' in html
    assert '<a href="/help/">site</a>' in html
    assert "javascript:" not in html.replace("[js](javascript:alert(1))", "")
    assert (
        '<img class="example" src="/api/labeling/queues/1/examples/left-ok/" alt="good" '
        'loading="lazy">' in html
    )
    assert '<span class="image-missing">[unknown]</span>' in html
    assert '<span class="image-missing">[tracker]</span>' in html
    assert "t.example" not in html
