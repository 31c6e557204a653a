"""The leads' quality reads (annotation/selectors_quality.py) and endpoints
(annotation/apis/quality.py) on a queue whose every answer is known, with the figures worked
out by hand below.

The world (categories: a = the pair's first candidate, b = its second; '-' = skip):

    pair  kind            relation  u1  u2    u3   u4   votes (a, b, tie, both wrong)
    P1    same prompt     left_of   a   a     a    b    (3, 1, 0, 0)
    P2    same prompt     left_of   b   b     tie  b    (0, 3, 1, 0)   ambiguous
    P3    same prompt     above     a   b     -    a    (2, 1, 0, 0)
    P4    same prompt     above     a   b               (1, 1, 0, 0)   in review
    C1    counterfactual  left_of   a   b          b    (1, 2, 0, 0)   intended a: disputed
    C2    counterfactual  left_of   b   bw    b         (0, 2, 0, 1)   intended b
    G1    gold (a)        left_of   a   a     b    b
    G2    gold (b)        left_of   b   tie   b    -

P1-P4 pair an image of config X (a) with one of config Y (b); C1, C2, G1 and G2 are both X.
u4 always answers with the image shown on the left; u3 answers in 0.5 s (the floor is 1.5 s).
"""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import AnnotatorQueueState, Judgment, Pair
from annotation.selectors_quality import (
    annotators_overall_page,
    annotators_quality,
    pair_detail,
    pairs_in_state,
    queue_agreement,
    queue_quality,
)
from annotation.services import quality
from annotation.services.queues import labeling_queue_create
from annotation.stats import wilson_interval
from config.errors import ValidationFailed
from tests.factories import CampaignFactory, CandidateFactory, GeneratorConfigFactory, PromptFactory
from tests.labeling.factories import annotators

pytestmark = pytest.mark.django_db

H31 = 0.8112781244591328  # entropy in bits of a 3-1 split
H21 = 0.9182958340544896  # of a 2-1 split


class World:
    def __init__(self):
        self.queue = labeling_queue_create(
            name="quality", overlap=3, allowed_group_names=["annotator"]
        )
        self.u1, self.u2, self.u3, self.u4, self.u5 = annotators(5, prefix="q")
        self.x = GeneratorConfigFactory(name="config-x")
        self.y = GeneratorConfigFactory(name="config-y")
        self.campaign = CampaignFactory()
        self.p1 = self.pair("left_of", b_config=self.y)
        self.p2 = self.pair("left_of", b_config=self.y)
        self.p3 = self.pair("above", b_config=self.y)
        self.p4 = self.pair("above", b_config=self.y)
        self.c1 = self.pair("left_of", kind="counterfactual", intended="a")
        self.c2 = self.pair("left_of", kind="counterfactual", intended="b")
        self.g1 = self.pair("left_of", gold="a")
        self.g2 = self.pair("left_of", gold="b")
        u1_ms = iter(range(1000, 9000, 1000))  # 1 s ... 8 s: median 4.5 s, one under the floor
        for pair, cat in [
            (self.p1, "a"), (self.p2, "b"), (self.p3, "a"), (self.p4, "a"), (self.c1, "a"),
            (self.c2, "b"), (self.g1, "a"), (self.g2, "b"),
        ]:  # fmt: skip
            self.vote(self.u1, pair, cat, ms=next(u1_ms))
        for pair, cat in [
            (self.p1, "a"), (self.p2, "b"), (self.p3, "b"), (self.p4, "b"), (self.c1, "b"),
            (self.c2, "both_wrong"), (self.g1, "a"), (self.g2, "tie"),
        ]:  # fmt: skip
            self.vote(self.u2, pair, cat, ms=None)
        for pair, cat in [
            (self.p1, "a"), (self.p2, "tie"), (self.p3, "skip"), (self.c2, "b"), (self.g1, "b"),
            (self.g2, "b"),
        ]:  # fmt: skip
            self.vote(self.u3, pair, cat, ms=500)
        for pair, cat in [
            (self.p1, "b"), (self.p2, "b"), (self.p3, "a"), (self.c1, "b"), (self.g1, "b"),
            (self.g2, "skip"),
        ]:  # fmt: skip
            self.vote(self.u4, pair, cat, ms=3000, left=cat if cat in ("a", "b") else "a")
        Pair.objects.filter(pk=self.p2.pk).update(resolution="ambiguous")
        Pair.objects.filter(pk=self.g1.pk).update(resolution="ambiguous")  # gold: never listed
        Pair.objects.filter(pk=self.p4.pk).update(review="pending")
        # C1: b leads the intended a 2 to 1, as the settle records it.
        Pair.objects.filter(pk=self.c1.pk).update(resolution="confident", disputed=True)
        AnnotatorQueueState.objects.create(
            queue=self.queue, annotator=self.u4, status="paused", gold_answers=1, trust=1 / 3,
            reason="auto-paused: 0 of 1 gold pairs right",
        )  # fmt: skip
        AnnotatorQueueState.objects.create(
            queue=self.queue, annotator=self.u1, gold_answers=2, gold_correct=2, trust=0.75
        )
        AnnotatorQueueState.objects.create(
            queue=self.queue, annotator=self.u5, status="paused", reason="paused by lead: test"
        )

    def pair(self, relation, *, b_config=None, kind="same_prompt", intended=None, gold=None):
        prompt = PromptFactory(prompt_set=self.campaign.prompt_set, relation_keys=f"|{relation}|")
        a = CandidateFactory(campaign=self.campaign, prompt=prompt, config=self.x)
        b = CandidateFactory(campaign=self.campaign, prompt=prompt, config=b_config or self.x)
        side = {"a": a, "b": b}
        return Pair.objects.create(
            queue=self.queue, candidate_a=a, candidate_b=b, prompt=prompt,
            kind="counterfactual" if kind == "counterfactual" else "same_prompt",
            intended_winner=side.get(intended), is_gold=gold is not None,
            gold_winner=side.get(gold), gold_source="lead" if gold else "",
            judgments_needed=32000 if gold else 3,
        )  # fmt: skip

    def vote(self, user, pair, category, *, ms, left="a"):
        """`category` as a, b, tie, both_wrong or skip; `left`: the candidate shown left."""
        shown_left = pair.candidate_a if left == "a" else pair.candidate_b
        winner = {"a": pair.candidate_a, "b": pair.candidate_b}.get(category)
        if winner is None:
            choice = category
        else:
            choice = "left" if winner == shown_left else "right"
        return Judgment.objects.create(
            pair=pair, annotator=user, client_submission_id=uuid.uuid4(),
            left_candidate=shown_left, choice=choice, winner=winner, duration_ms=ms,
        )  # fmt: skip


@pytest.fixture
def world():
    return World()


def by_name(rows):
    return {row.username: row for row in rows}


# --- annotators ----------------------------------------------------------------------------------


def test_each_annotators_gold_accuracy_peers_position_and_speed_are_counted(world):
    rows = by_name(annotators_quality(queue_id=world.queue.pk))

    assert list(rows) == ["q0", "q1", "q2", "q3", "q4"]  # most answers first; q4 has a state only
    u1, u2, u3, u4, u5 = (rows[f"q{i}"] for i in range(5))
    # gold: skips left out, a tie on a gold pair is wrong
    assert [(u.gold.hits, u.gold.trials) for u in (u1, u2, u3, u4)] == [
        (2, 2), (1, 2), (1, 2), (0, 1),
    ]  # fmt: skip
    assert (u1.gold.low, u1.gold.high) == wilson_interval(2, 2)
    # leave-one-out (worked out pair by pair): u1 agrees on P1, P2, not C1 (P3, C2: others tie)
    assert [(u.peers.hits, u.peers.trials) for u in (u1, u2, u3, u4)] == [
        (2, 3), (2, 4), (1, 2), (1, 2),
    ]  # fmt: skip
    # left picks: u1 had a on the left throughout and chose a 5 times of 8
    assert (u1.left.hits, u1.left.trials) == (5, 8)
    assert u1.left_p_value == pytest.approx(2 * 93 / 256)
    assert (u4.left.hits, u4.left.trials) == (5, 5)
    assert u4.left_p_value == pytest.approx(2 / 32)
    # rates over all answers
    assert (u2.answers, u2.ties, u2.both_wrong, u2.skips) == (8, 1, 1, 0)
    assert u2.tie_rate == 1 / 8
    assert (u3.answers, u3.skips, u3.skip_rate) == (6, 1, 1 / 6)
    # speed: median of timed non-skip answers; share faster than the floor
    assert u1.median_seconds == 4.5
    assert (u1.fast.hits, u1.fast.trials) == (1, 8)
    assert u2.median_seconds is None and u2.fast.trials == 0
    assert (u3.median_seconds, u3.fast.hits, u3.fast.trials) == (0.5, 5, 5)
    assert u3.flags == ["fast"]
    assert u1.flags == u4.flags == []
    # standing from the state rows
    assert (u4.status, u4.reason, u4.trust) == (
        "paused",
        "auto-paused: 0 of 1 gold pairs right",
        1 / 3,
    )
    assert (u1.status, u1.trust) == ("active", 0.75)
    assert (u2.status, u2.trust) == ("active", None)  # no state row yet
    assert (u5.answers, u5.status, u5.paused) == (0, "paused", True)


def test_a_steady_left_picker_is_flagged_for_position_bias(world):
    for i in range(12):
        pair = world.pair("left_of", b_config=world.y)
        world.vote(world.u4, pair, "a" if i % 2 else "b", ms=3000, left="a" if i % 2 else "b")

    u4 = by_name(annotators_quality(queue_id=world.queue.pk))["q3"]

    assert (u4.left.hits, u4.left.trials) == (17, 17)
    assert u4.left_p_value == pytest.approx(2 / 2**17)
    assert u4.flags == ["position_bias"]


def test_everyone_together_sums_the_queue(world):
    quality = queue_quality(queue_id=world.queue.pk)

    everyone = quality.everyone
    assert (everyone.answers, everyone.gold.hits, everyone.gold.trials) == (28, 4, 7)
    assert (everyone.peers.hits, everyone.peers.trials) == (6, 11)
    assert (everyone.skips, everyone.ties, everyone.both_wrong) == (2, 2, 1)
    assert quality.annotators_total == 5
    assert [a.username for a in quality.paused] == ["q3", "q4"]


def test_overall_rows_span_every_queue_with_trust_from_all_gold_answers(world):
    other = labeling_queue_create(name="other", overlap=1, allowed_group_names=["annotator"])
    prompt = PromptFactory(prompt_set=world.campaign.prompt_set)
    a = CandidateFactory(campaign=world.campaign, prompt=prompt, config=world.x)
    b = CandidateFactory(campaign=world.campaign, prompt=prompt, config=world.x)
    gold = Pair.objects.create(
        queue=other, candidate_a=a, candidate_b=b, prompt=prompt, kind="same_prompt",
        is_gold=True, gold_winner=b, gold_source="lead", judgments_needed=32000,
    )  # fmt: skip
    world.vote(world.u1, gold, "a", ms=2000)

    total, rows = annotators_overall_page(offset=0, limit=2)
    in_queue = by_name(annotators_quality(queue_id=world.queue.pk))["q0"]

    assert total == 5
    assert [r.username for r in rows] == ["q0", "q1"]
    u1 = rows[0]
    assert (u1.answers, u1.gold.hits, u1.gold.trials) == (9, 2, 3)
    assert u1.trust == (2 + 1) / (3 + 2)
    assert (in_queue.answers, in_queue.gold.trials) == (8, 2)
    (last,) = annotators_overall_page(offset=4, limit=10)[1]
    assert (last.username, last.answers, last.trust) == ("q4", 0, 0.5)


# --- agreement -----------------------------------------------------------------------------------


def test_agreement_overall_and_per_kind_relation_and_config_match_the_hand_computation(world):
    overall, split = queue_agreement(queue_id=world.queue.pk)

    # gold pairs left out; P1-P4, C1, C2 have >= 2 votes. n = 19 values (a 7, b 10, tie 1,
    # both wrong 1), observed disagreement 12: alpha = 1 - 18 * 12 / (361 - 151) = -1/35
    assert (overall.units, overall.votes) == (6, 19)
    assert overall.alpha == pytest.approx(-1 / 35)
    assert overall.kappa is None  # 4, 4, 3, 2, 3 and 3 votes
    assert overall.mean_entropy == pytest.approx((2 * H31 + 3 * H21 + 1) / 6)
    kinds = {g.key: g for g in split["kind"]}
    assert kinds["same_prompt"].alpha == pytest.approx(0.0)  # 1 - 12 * 8 / 96
    assert kinds["counterfactual"].alpha == pytest.approx(-1 / 9)  # 1 - 5 * 4 / 18
    assert kinds["counterfactual"].kappa == pytest.approx(-1 / 3)  # (1/3 - 1/2) / (1/2)
    relations = {g.key: g for g in split["relation"]}
    assert set(relations) == {"left_of", "above"}
    assert (relations["left_of"].units, relations["left_of"].alpha) == (4, pytest.approx(5 / 57))
    assert (relations["above"].units, relations["above"].alpha) == (2, pytest.approx(-1 / 3))
    configs = {g.key: g for g in split["config"]}
    assert configs["config-x"].units == 6  # every pair has an image of X
    assert configs["config-x"].alpha == pytest.approx(-1 / 35)
    assert (configs["config-y"].units, configs["config-y"].alpha) == (4, pytest.approx(0.0))


def test_the_trend_groups_pairs_by_the_day_of_their_last_vote(world):
    now = timezone.now()
    two_days_ago = now - timedelta(days=2)
    Judgment.objects.filter(pair__in=[world.p1, world.p2]).update(created_at=two_days_ago)
    Judgment.objects.filter(pair=world.p3).update(created_at=now - timedelta(days=40))

    _, split = queue_agreement(queue_id=world.queue.pk, now=now)

    days = {g.key: g.units for g in split["day"]}
    assert days == {two_days_ago.date().isoformat(): 2, now.date().isoformat(): 3}  # P3: too old


def test_a_queue_without_votes_has_no_agreement_yet(world):
    empty = labeling_queue_create(name="empty", allowed_group_names=["annotator"])

    overall, split = queue_agreement(queue_id=empty.pk)

    assert (overall.units, overall.alpha, overall.kappa, overall.mean_entropy) == (
        0,
        None,
        None,
        None,
    )
    assert split == {"kind": [], "relation": [], "config": [], "day": []}


# --- pairs -------------------------------------------------------------------------------------


def test_ambiguous_and_disputed_pairs_are_listed_with_their_votes_and_never_gold(world):
    ambiguous = list(pairs_in_state(queue_id=world.queue.pk, state="ambiguous"))
    disputed = list(pairs_in_state(queue_id=world.queue.pk, state="disputed"))

    assert [p.pk for p in ambiguous] == [world.p2.pk]
    assert (ambiguous[0].votes_a, ambiguous[0].votes_b, ambiguous[0].votes_tie) == (0, 3, 1)
    # C1: b leads the intended a 2 to 1; P4: in review. C2 follows its intended winner.
    assert [p.pk for p in disputed] == [world.c1.pk, world.p4.pk]
    with pytest.raises(ValidationFailed) as bad:
        pairs_in_state(queue_id=world.queue.pk, state="split")
    assert bad.value.field == "state"


def settle(pair: Pair, *, votes: int):
    """The pair at its target with `votes` counted votes, settled as the submit settles it."""
    Pair.objects.filter(pk=pair.pk).update(judgments_count=votes, judgments_needed=votes)
    return quality.pair_votes_settle(pair_id=pair.pk)


def test_a_counterfactual_pair_whose_majority_says_both_wrong_is_disputed_a_tie_is_not(world):
    def disputed() -> set[int]:
        return {p.pk for p in pairs_in_state(queue_id=world.queue.pk, state="disputed")}

    # C2 (intended b) gets one more both-wrong vote: b 2, both wrong 2, no majority
    world.vote(world.u4, world.c2, "both_wrong", ms=3000)
    assert settle(world.c2, votes=4).disputed is False
    assert world.c2.pk not in disputed()
    # and one more: both wrong 3 leads b 2
    world.vote(world.u5, world.c2, "both_wrong", ms=3000)
    assert settle(world.c2, votes=5).disputed is True
    assert world.c2.pk in disputed()


def test_a_pairs_drill_down_has_every_vote_with_its_annotator(world):
    detail = pair_detail(pair_id=world.c1.pk)

    assert detail.counts == {"a": 1, "b": 2, "tie": 0, "both_wrong": 0, "skip": 0}
    assert detail.entropy == pytest.approx(H21)
    assert [(v.username, v.category, v.shown_left) for v in detail.votes] == [
        ("q0", "a", "a"), ("q1", "b", "a"), ("q3", "b", "b"),
    ]  # fmt: skip
    assert [v.duration_ms for v in detail.votes] == [5000, None, 3000]
    g2 = pair_detail(pair_id=world.g2.pk)
    assert g2.counts == {"a": 0, "b": 2, "tie": 1, "both_wrong": 0, "skip": 1}


# --- the API -------------------------------------------------------------------------------------


def url(path: str) -> str:
    return f"/api/labeling/manage/{path}"


def test_the_quality_summary_answers_the_lead_with_the_same_figures(world, lead_client):
    response = lead_client.get(url(f"queues/{world.queue.pk}/quality/"))

    assert response.status_code == 200
    body = response.json()
    assert body["queue"] == {"id": world.queue.pk, "name": "quality"}
    assert body["settings"]["speed_floor_ms"] == 1500
    rows = {a["username"]: a for a in body["annotators"]}
    assert rows["q0"]["gold"]["hits"] == 2 and rows["q0"]["gold"]["trials"] == 2
    assert rows["q0"]["gold"]["low"] == pytest.approx(wilson_interval(2, 2)[0])
    assert rows["q0"]["peers"]["rate"] == pytest.approx(2 / 3)
    assert rows["q3"]["left_p_value"] == pytest.approx(0.0625)
    assert rows["q2"]["flags"] == ["fast"]
    assert rows["q3"]["status"] == "paused"
    assert body["everyone"]["answers"] == 28 and body["everyone"]["annotator"] is None
    assert body["agreement"]["alpha"] == pytest.approx(-1 / 35)
    assert {g["key"] for g in body["by_relation"]} == {"left_of", "above"}
    assert body["pairs"] == {"ambiguous": 1, "disputed": 2, "in_review": 1, "settled": 0}


def test_ambiguous_and_disputed_pairs_come_in_pages(world, lead_client):
    first = lead_client.get(url(f"queues/{world.queue.pk}/quality/pairs/?state=disputed&limit=1"))
    second = lead_client.get(first.json()["next"])

    assert first.status_code == 200
    assert first.json()["count"] == 2
    (row,) = first.json()["results"]
    assert row == {
        "id": world.c1.pk, "kind": "counterfactual", "prompt": world.c1.prompt.text,
        "resolution": "confident", "review": "", "intended_winner": "a",
        "votes": {"a": 1, "b": 2, "tie": 0, "both_wrong": 0, "skip": 0},
        "entropy": pytest.approx(H21),
    }  # fmt: skip
    assert [r["id"] for r in second.json()["results"]] == [world.p4.pk]


@pytest.mark.parametrize("query", ["", "?state=", "?state=gold", "?state=ambiguous,disputed"])
def test_the_pair_list_refuses_a_missing_or_unknown_state_naming_it(world, lead_client, query):
    response = lead_client.get(url(f"queues/{world.queue.pk}/quality/pairs/{query}"))

    assert response.status_code == 400
    assert response.json()["field"] == "state"


def test_unknown_queues_and_pairs_are_404s(lead_client):
    assert lead_client.get(url("queues/999999/quality/")).status_code == 404
    assert lead_client.get(url("queues/999999/quality/pairs/?state=ambiguous")).status_code == 404
    missing = lead_client.get(url("pairs/999999/"))
    assert (missing.status_code, missing.json()["field"]) == (404, "pair")


def test_the_drill_down_shows_images_gold_and_votes_to_the_lead(world, lead_client):
    body = lead_client.get(url(f"pairs/{world.g1.pk}/")).json()

    assert body["gold"] == {"is_gold": True, "source": "lead", "winner": "a", "explanation": ""}
    assert [c["image_url"] for c in body["candidates"]] == [
        f"/api/generation/candidates/{world.g1.candidate_a_id}/image/",
        f"/api/generation/candidates/{world.g1.candidate_b_id}/image/",
    ]
    assert [(v["username"], v["category"]) for v in body["votes"]] == [
        ("q0", "a"), ("q1", "a"), ("q2", "b"), ("q3", "b"),
    ]  # fmt: skip
    assert body["votes_total"] == 4


def test_annotators_are_refused_every_quality_endpoint_and_see_nothing_of_gold(
    world, annotator_client
):
    q, p = world.queue.pk, world.g1.pk
    for method, path, body in [
        ("get", f"queues/{q}/quality/", None),
        ("get", f"queues/{q}/quality/pairs/?state=ambiguous", None),
        ("get", "annotators/quality/", None),
        ("get", f"pairs/{p}/", None),
        ("post", f"queues/{q}/annotators/{world.u4.pk}/resume/", {}),
        ("post", f"queues/{q}/annotators/{world.u1.pk}/pause/", {"reason": "x"}),
        ("post", f"pairs/{world.p1.pk}/gold/", {"winner": world.p1.candidate_a_id}),
        ("delete", f"pairs/{p}/gold/", None),
        ("post", f"queues/{q}/gold/confirm/", {"pairs": [p]}),
        ("post", f"pairs/{p}/review/", {}),
    ]:
        response = getattr(annotator_client, method)(url(path), body, format="json")
        assert response.status_code == 403, path
        assert response.json()["error"] == "permission_denied"
        assert "gold" not in response.content.decode()
    assert AnnotatorQueueState.objects.get(annotator=world.u4).status == "paused"
    assert list(Pair.objects.filter(is_gold=True).values_list("pk", flat=True).order_by("pk")) == [
        world.g1.pk, world.g2.pk,
    ]  # fmt: skip


def test_a_lead_resumes_and_pauses_an_annotator(world, lead, lead_client):
    resumed = lead_client.post(url(f"queues/{world.queue.pk}/annotators/{world.u4.pk}/resume/"))
    again = lead_client.post(url(f"queues/{world.queue.pk}/annotators/{world.u4.pk}/resume/"))
    paused = lead_client.post(
        url(f"queues/{world.queue.pk}/annotators/{world.u1.pk}/pause/"),
        {"reason": "answers too fast"},
        format="json",
    )

    assert resumed.status_code == 200
    assert resumed.json()["status"] == "active"
    assert (again.status_code, again.json()["error"]) == (409, "not_paused")
    assert paused.status_code == 200
    state = AnnotatorQueueState.objects.get(queue=world.queue, annotator=world.u1)
    assert (state.status, state.changed_by) == ("paused", lead)
    assert "answers too fast" in state.reason


def test_pausing_refuses_a_bad_reason_or_an_unknown_annotator_and_changes_nothing(
    world, lead_client
):
    too_long = lead_client.post(
        url(f"queues/{world.queue.pk}/annotators/{world.u1.pk}/pause/"),
        {"reason": "x" * 251},
        format="json",
    )
    unknown = lead_client.post(url(f"queues/{world.queue.pk}/annotators/999999/pause/"), {})

    assert (too_long.status_code, too_long.json()["field"]) == (400, "reason")
    assert (unknown.status_code, unknown.json()["field"]) == (404, "annotator")
    assert AnnotatorQueueState.objects.get(annotator=world.u1).status == "active"


def test_a_lead_marks_and_unmarks_a_gold_pair(world, lead_client):
    marked = lead_client.post(
        url(f"pairs/{world.p1.pk}/gold/"),
        {"winner": world.p1.candidate_b_id, "explanation": "the cat is on the left"},
        format="json",
    )
    assert marked.status_code == 200
    assert marked.json()["gold"] == {
        "is_gold": True, "source": "lead", "winner": "b", "explanation": "the cat is on the left",
    }  # fmt: skip
    # gold pairs leave agreement and the lists
    assert queue_agreement(queue_id=world.queue.pk)[0].units == 5

    unmarked = lead_client.delete(url(f"pairs/{world.p1.pk}/gold/"))
    assert unmarked.status_code == 200
    assert unmarked.json()["gold"]["is_gold"] is False
    assert queue_agreement(queue_id=world.queue.pk)[0].units == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "winner"),
        ({"winner": "left"}, "winner"),
        ({"winner": 0}, "winner"),
        ({"winner": 2**63}, "winner"),
        ({"winner": None}, "winner"),
        ({"winner": "other-candidate"}, "winner"),
        ({"winner": 1, "explanation": "x" * 501}, "explanation"),
        ({"winner": 1, "explanation": "a\u0000b"}, "explanation"),
    ],
)
def test_marking_gold_refuses_bad_input_naming_the_field(world, lead_client, body, field):
    if body.get("winner") == "other-candidate":
        body = {"winner": world.p2.candidate_a_id}  # a candidate of another pair
    response = lead_client.post(url(f"pairs/{world.p1.pk}/gold/"), body, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Pair.objects.get(pk=world.p1.pk).is_gold


def test_a_lead_confirms_proposed_gold_pairs_all_or_none(world, lead_client):
    Pair.objects.filter(pk__in=[world.c1.pk, world.c2.pk]).update(gold_source="proposed")
    confirm = url(f"queues/{world.queue.pk}/gold/confirm/")

    mixed = lead_client.post(confirm, {"pairs": [world.c1.pk, world.p1.pk]}, format="json")
    assert (mixed.status_code, mixed.json()["error"]) == (409, "not_proposed")
    assert not Pair.objects.filter(pk=world.c1.pk, is_gold=True).exists()

    for body in ({"pairs": []}, {"pairs": "all"}, {"pairs": [0]}, {}):
        bad = lead_client.post(confirm, body, format="json")
        assert bad.status_code == 400, body
        assert bad.json()["field"].startswith("pairs"), body

    done = lead_client.post(confirm, {"pairs": [world.c1.pk, world.c2.pk]}, format="json")
    assert done.json() == {"confirmed": 2}
    c1 = Pair.objects.get(pk=world.c1.pk)
    assert (c1.is_gold, c1.gold_source, c1.gold_winner_id) == (
        True, "confirmed", world.c1.intended_winner_id,
    )  # fmt: skip


def test_a_lead_sends_a_pair_to_review_once_and_only_with_a_review_queue(world, lead_client):
    send = url(f"pairs/{world.c1.pk}/review/")
    without = lead_client.post(send)
    assert (without.status_code, without.json()["error"]) == (409, "no_review_queue")

    review = labeling_queue_create(name="review", allowed_group_names=["lead"])
    world.queue.review_queue = review
    world.queue.save(update_fields=["review_queue"])
    sent = lead_client.post(send)
    twice = lead_client.post(send)

    assert sent.status_code == 200
    assert sent.json()["review"] == "pending"
    assert sent.json()["reviews"][0]["queue"] == {"id": review.pk, "name": "review"}
    assert (twice.status_code, twice.json()["error"]) == (409, "in_review")
    assert Pair.objects.filter(review_of=world.c1).count() == 1


def test_the_overall_annotator_list_comes_in_pages(world, lead_client):
    response = lead_client.get(url("annotators/quality/?limit=2&offset=1"))

    assert response.status_code == 200
    assert response.json()["count"] == 5
    assert [r["username"] for r in response.json()["results"]] == ["q1", "q2"]
    assert response.json()["results"][0]["gold"]["trials"] == 2


def test_the_summary_and_a_page_of_pairs_cost_the_same_queries_for_more_annotators_and_pairs(
    world, lead_client
):
    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert lead_client.get(url(path)).status_code == 200
        return len(captured)

    paths = [
        f"queues/{world.queue.pk}/quality/",
        f"queues/{world.queue.pk}/quality/pairs/?state=disputed",
        f"pairs/{world.c1.pk}/",
    ]
    before = [queries(path) for path in paths]
    # more annotators (paused ones too), more disputed pairs, more votes on the drilled-down pair
    for user in annotators(6, prefix="extra"):
        world.vote(user, world.c1, "b", ms=2000)
        for _ in range(2):
            pair = world.pair("above", kind="counterfactual", intended="a")
            world.vote(user, pair, "b", ms=2000)
            world.vote(world.u1, pair, "b", ms=2000)
            settle(pair, votes=2)
        AnnotatorQueueState.objects.create(queue=world.queue, annotator=user, status="paused")

    assert lead_client.get(url(paths[1])).json()["count"] == 2 + 12
    assert [queries(path) for path in paths] == before
