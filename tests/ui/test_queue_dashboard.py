"""The lead's queue dashboard with quality control (frontend/dashboard.py): agreement and its
trend, gold accuracy per annotator, the annotators' quality table, paused annotators and their
resume button, ambiguous and disputed pairs and a pair's drill-down; in Chromium, a lead who
resumes an auto-paused annotator and a page that refreshes itself.

The queue (a = a pair's first image, the intended winner of both counterfactual pairs):

    pair        qc0  qc1  qc2  votes (a, b, tie)
    cf1         b    b    a    (1, 2, 0)   majority against the intended winner: disputed
    cf2         a    a    a    (3, 0, 0)
    s1          a    b         (1, 1, 0)   ambiguous
    s2          a    a    tie  (2, 0, 1)
    s3          b              one vote: no agreement measured
    g1..g10     gold, answer a: qc0 a on g1, qc1 b on g1, qc3 b on all ten (auto-paused)

Agreement over cf1, cf2, s1, s2: 11 values (a 7, b 3, tie 1), observed disagreement 2 + 0 + 2
+ 2 = 6, so alpha = 1 - 10 * 6 / (121 - 59) = 1/31; mean entropy (0.918 + 0 + 1 + 0.918) / 4.
"""

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotatorQueueState, Judgment, LabelingQueue, Pair
from annotation.services.annotators import user_create
from annotation.services.quality import annotator_queue_pause, gold_answer_record, pair_gold_mark
from config.roles import Role
from tests.ui.conftest import sign_in
from tests.ui.factories import MODEL_NAMES, ui_queue

PASSWORD = "annotator-pass"


class QualityQueue:
    def __init__(self):
        self.queue, pairs, _ = ui_queue(n_pairs=13, counterfactual=2, overlap=3, name="qc-ui")
        # a pause rule that decides within the ten gold pairs here (the default waits for 20)
        LabelingQueue.objects.filter(pk=self.queue.pk).update(pause_min_gold=10, pause_accuracy=0.7)
        self.queue.refresh_from_db()
        self.cf1, self.cf2, self.s1, self.s2, self.s3, *self.gold = pairs
        assert [p.kind for p in (self.cf1, self.cf2)] == ["counterfactual"] * 2
        self.lead = user_create(username="qc-lead", password="lead-pass-123", role=Role.LEAD)
        self.ann = [
            user_create(username=f"qc{i}", password=PASSWORD, role=Role.ANNOTATOR) for i in range(4)
        ]
        for pair in self.gold:
            pair_gold_mark(
                pair_id=pair.pk, winner_id=pair.candidate_a_id, explanation="", by=self.lead
            )
        for pair in (self.cf1, self.cf2):  # the originals were rendered first: a
            assert pair.intended_winner_id == pair.candidate_a_id
        qc0, qc1, qc2, qc3 = self.ann
        cf1, cf2, s1, s2, s3 = self.cf1, self.cf2, self.s1, self.s2, self.s3
        for user, answers in [
            (qc0, [(cf1, "b"), (cf2, "a"), (s1, "a"), (s2, "a"), (s3, "b")]),
            (qc1, [(cf1, "b"), (cf2, "a"), (s1, "b"), (s2, "a")]),
            (qc2, [(cf1, "a"), (cf2, "a"), (s2, "tie")]),
        ]:  # fmt: skip
            for pair, category in answers:
                self.vote(user, pair, category)
        self.gold_vote(qc0, self.gold[0], "a")
        self.gold_vote(qc1, self.gold[0], "b")
        for pair in self.gold:
            self.gold_vote(qc3, pair, "b")
        Pair.objects.filter(pk=self.s1.pk).update(resolution="ambiguous")
        Pair.objects.filter(pk=self.cf1.pk).update(disputed=True)  # as the settle records it

    def vote(self, user, pair, category, *, ms=2500):
        winner = {"a": pair.candidate_a, "b": pair.candidate_b}.get(category)
        return Judgment.objects.create(
            pair=pair, annotator=user, client_submission_id=uuid.uuid4(),
            left_candidate=pair.candidate_a, choice="left" if category == "a" else (
                "right" if category == "b" else category
            ), winner=winner, duration_ms=ms,
        )  # fmt: skip

    def gold_vote(self, user, pair, category):
        self.vote(user, pair, category)
        gold_answer_record(queue_id=self.queue.pk, annotator_id=user.pk, correct=category == "a")

    def state(self, user) -> AnnotatorQueueState:
        return AnnotatorQueueState.objects.get(queue=self.queue, annotator=user)


def client_of(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def cells(html: str, username: str) -> dict[str, str]:
    block = re.search(rf'<tr data-quality-annotator="{username}"[^>]*>(.*?)</tr>', html, re.S)
    assert block, username
    return dict(re.findall(r'data-q="(\w+)">([^<]*)<', block.group(1)))


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


# --- the page without a browser ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_shows_agreement_gold_quality_paused_and_pairs_to_look_at():
    world = QualityQueue()
    qc3 = world.ann[3]
    assert world.state(qc3).status == "paused"  # auto-paused: 0 of 10 gold right

    response = client_of(world.lead).get(f"/leads/queues/{world.queue.pk}/")
    html = response.content.decode()

    assert response.status_code == 200
    assert figure(html, "alpha") == "0.03"  # 1/31
    assert figure(html, "entropy") == "0.71"
    assert f'data-day="{timezone.now().date().isoformat()}"' in html  # today's trend point
    assert 'data-group="relation:left_of"' in html
    # gold: qc3's interval ends below the 70% threshold, qc0's and qc1's do not
    gold_rows = dict(re.findall(r'<g data-gold-row="(\w+)" class="(\w*)">', html))
    assert gold_rows == {"qc0": "", "qc1": "", "qc3": "below"}
    # the quality table
    assert cells(html, "qc0") == {
        "status": "active", "answers": "6", "gold": "1/1 · 100% (21–100%)",
        "peers": "1/1 · 100% (21–100%)", "left": "67% of 6 · p = 0.69", "ties": "0%",
        "both_wrong": "0%", "skips": "0%", "seconds": "2.5", "fast": "0% of 6", "trust": "0.67",
    }  # fmt: skip
    assert cells(html, "qc3")["gold"] == "0/10 · 0% (0–28%)"
    assert cells(html, "qc3")["status"] == "paused"
    # paused annotators, with why and a resume button
    paused = re.search(r'<tr data-paused-annotator="qc3">(.*?)</tr>', html, re.S).group(1)
    assert "auto-paused: 0 of 10 gold pairs right" in paused
    assert f'action="/leads/queues/{world.queue.pk}/annotators/{qc3.pk}/resume/"' in paused
    assert "csrfmiddlewaretoken" in paused
    # the lists, each pair linked to its drill-down
    assert figure(html, "ambiguous") == "1"
    assert figure(html, "disputed") == "1"
    ambiguous = re.search(r'<section class="card" id="ambiguous">(.*?)</section>', html, re.S)
    disputed = re.search(r'<section class="card" id="disputed">(.*?)</section>', html, re.S)
    assert f'href="/leads/pairs/{world.s1.pk}/"' in ambiguous.group(1)
    assert f'href="/leads/pairs/{world.cf1.pk}/"' in disputed.group(1)
    assert re.findall(r'data-pair="(\d+)"', disputed.group(1)) == [str(world.cf1.pk)]
    for name in MODEL_NAMES:
        assert name not in html


@pytest.mark.django_db
def test_a_pairs_drill_down_shows_its_images_and_every_vote(annotator):
    world = QualityQueue()

    html = client_of(world.lead).get(f"/leads/pairs/{world.cf1.pk}/").content.decode()

    assert f'src="/api/generation/candidates/{world.cf1.candidate_a_id}/image/"' in html
    assert f'src="/api/generation/candidates/{world.cf1.candidate_b_id}/image/"' in html
    assert re.findall(r'<tr data-vote="(\w+)">', html) == ["qc0", "qc1", "qc2"]
    assert re.findall(r'data-col="picked">(\w+)<', html) == ["b", "b", "a"]
    assert '<figure class="card" data-side="a">' in html
    a_side = html.split('data-side="a"')[1].split("</figure>")[0]
    assert "intended winner" in a_side
    assert figure(html, "entropy") == "0.92"
    for name in MODEL_NAMES:
        assert name not in html
    # annotators never see it; an unknown pair is a 404
    refused = client_of(annotator).get(f"/leads/pairs/{world.cf1.pk}/")
    assert refused.status_code == 403
    assert "qc0" not in refused.content.decode()
    assert client_of(world.lead).get("/leads/pairs/999999/").status_code == 404


@pytest.mark.django_db
def test_the_resume_button_needs_a_lead_a_post_and_the_csrf_token(annotator):
    world = QualityQueue()
    qc3 = world.ann[3]
    url = f"/leads/queues/{world.queue.pk}/annotators/{qc3.pk}/resume/"

    assert client_of(annotator).post(url).status_code == 403
    assert client_of(world.lead).get(url).status_code == 405
    assert client_of(world.lead, enforce_csrf_checks=True).post(url).status_code == 403
    assert world.state(qc3).status == "paused"

    done = client_of(world.lead).post(url, follow=True)
    assert done.redirect_chain == [(f"/leads/queues/{world.queue.pk}/", 302)]
    assert "qc3 may label this queue again." in done.content.decode()
    assert (world.state(qc3).status, world.state(qc3).changed_by) == ("active", world.lead)
    # pressed twice (a second tab): the service's refusal is shown, nothing changes
    again = client_of(world.lead).post(url, follow=True).content.decode()
    assert "is active in this queue, not paused" in again
    assert world.state(qc3).status == "active"


# --- in Chromium --------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_lead_sees_an_auto_paused_annotator_and_resumes_them(live_server, context, artifacts):
    # Given an annotator auto-paused after ten wrong gold answers
    world = QualityQueue()
    qc3 = world.ann[3]
    sign_in(context, live_server, world.lead)
    page = context.new_page()

    # When the lead opens the queue's dashboard
    page.goto(f"{live_server.url}/leads/queues/{world.queue.pk}/")
    page.screenshot(path=str(artifacts / "queue-dashboard-quality.png"), full_page=True)

    # Then they see who is paused and why
    row = page.locator("tr[data-paused-annotator=qc3]")
    assert "auto-paused: 0 of 10 gold pairs right" in row.inner_text()
    assert page.locator("[data-gold-row=qc3].below").count() == 1
    # And when they press Resume, the annotator may label again
    row.locator("button[data-resume=qc3]").click()
    page.wait_for_url(f"{live_server.url}/leads/queues/{world.queue.pk}/")
    assert page.inner_text(".message") == "qc3 may label this queue again."
    assert page.locator("tr[data-paused-annotator]").count() == 0
    assert page.inner_text("[data-figure=paused]") == "Nobody is paused in this queue."
    state = world.state(qc3)
    assert (state.status, state.changed_by_id) == ("active", world.lead.pk)
    assert page.inner_text("tr[data-quality-annotator=qc3] [data-q=status]") == "active"
    assert page.inner_text("tr[data-quality-annotator=qc3] [data-flag]") == "left/right bias"

    # And a disputed pair opens on its images and votes
    page.click(f"#disputed a[href='/leads/pairs/{world.cf1.pk}/']")
    page.wait_for_url(f"{live_server.url}/leads/pairs/{world.cf1.pk}/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.pair-images img')]"
        ".every(i => i.complete && i.naturalWidth === 256)"
    )
    page.screenshot(path=str(artifacts / "queue-dashboard-pair.png"), full_page=True)
    assert page.locator("tr[data-vote]").count() == 3


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_refreshes_itself_with_a_new_pause(live_server, context):
    # Given a lead watching the dashboard (the page's clock is the test's)
    world = QualityQueue()
    sign_in(context, live_server, world.lead)
    page = context.new_page()
    page.clock.install()
    page.goto(f"{live_server.url}/leads/queues/{world.queue.pk}/")
    assert page.locator("tr[data-paused-annotator=qc1]").count() == 0

    # When another lead pauses qc1 and the refresh interval passes
    annotator_queue_pause(
        queue_id=world.queue.pk, annotator_id=world.ann[1].pk, by=world.lead, reason="spot check"
    )
    page.clock.run_for(31_000)

    # Then the paused list shows them without a reload
    row = page.wait_for_selector("tr[data-paused-annotator=qc1]")
    assert "spot check" in row.inner_text()
    assert page.evaluate("document.getElementById('dash-live').dataset.refreshedAt") is not None
