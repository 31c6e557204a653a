"""Quality control in the labeling engine (issue 16): gold pairs interleaved evenly through each
annotator's stream and never shown twice, indistinguishable from other pairs, outside every
overlap; qualification; auto-pause and resume; adaptive overlap, ambiguity, review and
settlement; answers per criterion; the queue's quality settings."""

import hashlib
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import Count, F, Q
from psycopg.types.json import Jsonb

from annotation.models import (
    GOLD_CAPACITY,
    AnnotatorProfile,
    AnnotatorQueueState,
    Judgment,
    LabelingQueue,
    Pair,
)
from annotation.services import quality, statements
from annotation.services.assignment import pairs_next_for_annotator
from annotation.services.judgments import judgment_submit
from annotation.services.queues import labeling_queue_create, labeling_queue_update
from annotation.services.undo import judgment_undo
from annotation.stats import posterior_accuracy
from config import db
from config.errors import Conflict, ValidationFailed
from config.roles import Role
from tests.factories import CampaignFactory, CandidateFactory, GeneratorConfigFactory, PromptFactory
from tests.labeling.factories import (
    annotators,
    client_for,
    next_url,
    queue_with_pairs,
    submit_url,
)


def gold_pairs(queue: LabelingQueue, n: int) -> list[Pair]:
    """`n` same-prompt pairs marked gold by a lead (candidate_a the answer)."""
    campaign, config = CampaignFactory(), GeneratorConfigFactory()
    out = []
    for _ in range(n):
        prompt = PromptFactory(prompt_set=campaign.prompt_set)
        a = CandidateFactory(campaign=campaign, prompt=prompt, config=config)
        b = CandidateFactory(campaign=campaign, prompt=prompt, config=config)
        pair = Pair.objects.create(
            queue=queue,
            candidate_a=a,
            candidate_b=b,
            kind=Pair.Kind.SAME_PROMPT,
            prompt=prompt,
            judgments_needed=queue.overlap,
        )
        out.append(
            quality.pair_gold_mark(
                pair_id=pair.pk, winner_id=a.pk, explanation="the cup is left", by=None
            )
        )
    return out


def answer(user, queue, item, *, right_on_gold: bool | None = None, choice: str = "left"):
    """Submit for `item`; with right_on_gold set, a gold pair is answered right (or wrong)."""
    pair = Pair.objects.get(pk=item.pair_id)
    if pair.is_gold and right_on_gold is not None:
        shown_left = item.left.content_sha256 == pair.gold_winner.content_sha256
        choice = "left" if shown_left == right_on_gold else "right"
    return judgment_submit(
        user=user,
        queue_id=queue.pk,
        pair_id=item.pair_id,
        client_submission_id=uuid.uuid4(),
        choice=choice,
    )


def stream(user, queue, n: int, *, count: int = 1, right_on_gold: bool = True) -> list[int]:
    """The pair ids `user` is served, in order, answering each (gold ones right)."""
    served: list[int] = []
    while len(served) < n:
        items = pairs_next_for_annotator(user=user, queue_id=queue.pk, count=count)
        assert items, f"nothing served after {len(served)} items"
        for item in items:
            served.append(item.pair_id)
            answer(user, queue, item, right_on_gold=right_on_gold)
    return served  # all answered (a last batch may go past n)


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 3])
def test_gold_pairs_are_spread_evenly_through_each_stream_and_never_shown_twice(count):
    queue, _ = queue_with_pairs(n_pairs=260, overlap=1, quality={"gold_rate": 0.1})
    gold = {p.pk for p in gold_pairs(queue, 40)}
    (user,) = annotators(1)
    served = stream(user, queue, 200, count=count)[:200]
    positions = [i + 1 for i, pair_id in enumerate(served) if pair_id in gold]
    served_gold = [pair_id for pair_id in served if pair_id in gold]
    assert len(served_gold) == len(set(served_gold)), "a gold pair was shown twice"
    # one in ten on average: 200 items hold 15 to 25 gold ones
    assert 15 <= len(positions) <= 25, positions
    # never bunched: the first within the first block, gaps between B/2 and 3B/2 (a batch of 3
    # may move one by up to two places), and gold items up to the end of the stream
    assert positions[0] <= 10 + count, positions
    gaps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    assert min(gaps) >= 5 - (count - 1) and max(gaps) <= 15 + (count - 1), gaps
    assert positions[-1] >= 200 - 15 - count, positions
    state = AnnotatorQueueState.objects.get(queue=queue, annotator=user)
    answered_gold = len(set(stream_all := served) & gold)
    assert state.gold_answers == state.gold_correct == state.gold_served >= answered_gold
    assert state.served >= len(stream_all)


@pytest.mark.django_db
def test_the_gold_spacing_is_not_a_fixed_period():
    queue, _ = queue_with_pairs(n_pairs=260, overlap=3, quality={"gold_rate": 0.1})
    gold = {p.pk for p in gold_pairs(queue, 40)}
    patterns = set()
    for user in annotators(3):
        served = stream(user, queue, 80)
        patterns.add(tuple(i for i, pair_id in enumerate(served) if pair_id in gold))
    assert len(patterns) == 3, "every annotator got gold at the same positions"


@pytest.mark.django_db
def test_an_annotator_cannot_tell_a_gold_pair_from_another():
    queue, _ = queue_with_pairs(n_pairs=40, overlap=3, images=True, quality={"gold_rate": 0.5})
    campaign, config = CampaignFactory(), GeneratorConfigFactory()
    from tests.labeling.factories import candidate_with_image

    gold = set()
    for _ in range(10):
        prompt = PromptFactory(prompt_set=campaign.prompt_set)
        a = candidate_with_image(campaign=campaign, prompt=prompt, config=config)
        b = candidate_with_image(campaign=campaign, prompt=prompt, config=config)
        pair = Pair.objects.create(
            queue=queue, candidate_a=a, candidate_b=b, kind="same_prompt", prompt=prompt
        )
        quality.pair_gold_mark(pair_id=pair.pk, winner_id=a.pk, explanation="secret", by=None)
        gold.add(pair.pk)
    (user,) = annotators(1)
    client = client_for(user)
    shapes = {True: set(), False: set()}
    for _ in range(8):
        body = client.post(next_url(queue), {"count": 3}, format="json")
        assert body.status_code == 200
        text = body.content.decode()
        assert "gold" not in text and "secret" not in text
        for item in body.json()["items"]:
            is_gold = item["pair"] in gold
            shape = (
                tuple(sorted(item)),
                tuple(sorted(item["prompt"])),
                tuple(sorted(item["left"])),
                item["left"]["url"].rsplit("/", 2)[0],
            )
            shapes[is_gold].add(shape)
            done = client.post(
                submit_url(queue),
                {"pair": item["pair"], "client_submission_id": str(uuid.uuid4()), "choice": "tie"},
                format="json",
            )
            assert done.status_code == 201
            # no feedback in a queue that gives none: the answer's shape is the same too
            assert done.json()["feedback"] is None
    assert shapes[True] and shapes[False]
    assert shapes[True] == shapes[False]


@pytest.mark.django_db
def test_gold_answers_fill_no_overlap_and_everyone_may_answer_a_gold_pair():
    queue, _ = queue_with_pairs(n_pairs=5, overlap=2, quality={"gold_rate": 0.5})
    (pair,) = gold_pairs(queue, 1)
    users = annotators(6)
    for user in users:
        served = stream(user, queue, 2)
        assert pair.pk in served
    pair.refresh_from_db()
    assert pair.judgments_needed == GOLD_CAPACITY
    assert pair.judgments_count == 6 and pair.resolution == ""


@pytest.mark.django_db
def test_a_missed_gold_pair_shows_its_explanation_when_the_queue_gives_feedback():
    queue, _ = queue_with_pairs(
        n_pairs=5, overlap=2, quality={"gold_rate": 0.5, "gold_feedback": True}
    )
    gold_pairs(queue, 3)
    (user,) = annotators(1)
    feedback = []
    for _ in range(4):
        for item in pairs_next_for_annotator(user=user, queue_id=queue.pk, count=1):
            if Pair.objects.get(pk=item.pair_id).is_gold:
                feedback.append(answer(user, queue, item, right_on_gold=False).feedback)
            else:
                assert answer(user, queue, item).feedback is None
    assert feedback and all(f == "the cup is left" for f in feedback)


@pytest.mark.django_db
def test_only_the_first_answer_to_a_gold_pair_counts_even_after_an_undo():
    queue, _ = queue_with_pairs(
        n_pairs=2, overlap=2, quality={"gold_rate": 0.5, "gold_feedback": True}
    )
    gold_pairs(queue, 1)
    (user,) = annotators(1)
    for _ in range(3):
        (item,) = pairs_next_for_annotator(user=user, queue_id=queue.pk, count=1)
        if Pair.objects.get(pk=item.pair_id).is_gold:
            break
        answer(user, queue, item)
    missed = answer(user, queue, item, right_on_gold=False)
    assert missed.feedback == "the cup is left"
    again = judgment_undo(
        user=user, queue_id=queue.pk, client_submission_id=missed.judgment.client_submission_id
    )
    assert again.pair_id == item.pair_id
    # the same pair answered right after the undo: still one gold answer, a miss
    assert answer(user, queue, again, right_on_gold=True).feedback is None
    state = AnnotatorQueueState.objects.get(annotator=user, queue=queue)
    assert (state.gold_answers, state.gold_correct) == (1, 0)
    assert state.trust == pytest.approx(posterior_accuracy(0, 1))


@pytest.mark.django_db
def test_qualification_serves_gold_first_and_lets_in_only_who_passes():
    queue, regular = queue_with_pairs(
        n_pairs=10,
        overlap=3,
        quality={"qualification_gold": 3, "qualification_accuracy": 0.66},
    )
    gold = {p.pk for p in gold_pairs(queue, 5)}
    good, bad = annotators(2)
    assert set(stream(good, queue, 3, right_on_gold=True)) <= gold
    assert AnnotatorQueueState.objects.get(annotator=good, queue=queue).status == "active"
    assert not set(stream(good, queue, 3)) & gold  # gold_rate 0: real pairs from now on
    assert set(stream(bad, queue, 3, right_on_gold=False)) <= gold
    state = AnnotatorQueueState.objects.get(annotator=bad, queue=queue)
    assert state.status == "disqualified" and "failed qualification" in state.reason
    response = client_for(bad).post(next_url(queue), {}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "annotator_paused"


@pytest.mark.django_db
def test_a_careless_annotator_is_paused_and_a_lead_resumes_them():
    queue, _ = queue_with_pairs(
        n_pairs=80,
        overlap=3,
        quality={"gold_rate": 0.5, "pause_min_gold": 6, "pause_accuracy": 0.7},
    )
    gold_pairs(queue, 30)
    careful, careless = annotators(2)
    stream(careful, queue, 30, right_on_gold=True)
    with pytest.raises(Conflict) as paused:
        stream(careless, queue, 40, right_on_gold=False)
    assert paused.value.code == "annotator_paused"
    state = AnnotatorQueueState.objects.get(annotator=careless, queue=queue)
    assert state.status == "paused" and state.gold_answers == 6 and "auto-paused" in state.reason
    assert state.reason == (
        "auto-paused: 0 of 6 gold pairs right (0%; 95% interval 0%-39%, below 70%)"
    )
    assert state.trust == pytest.approx(posterior_accuracy(0, 6))
    profile = AnnotatorProfile.objects.get(user=careless)
    assert profile.quality_score == pytest.approx(posterior_accuracy(0, 6))
    assert AnnotatorQueueState.objects.get(annotator=careful, queue=queue).status == "active"
    kept = Judgment.objects.filter(annotator=careless).count()
    assert kept >= 6  # their past answers stay
    lead = annotators(1, prefix="lead")[0]
    quality.annotator_queue_resume(queue_id=queue.pk, annotator_id=careless.pk, by=lead)
    assert pairs_next_for_annotator(user=careless, queue_id=queue.pk, count=1)
    with pytest.raises(Conflict):
        quality.annotator_queue_resume(queue_id=queue.pk, annotator_id=careless.pk, by=lead)


def _vote(user, queue, pair: Pair, winner_is_a: bool | None):
    items = pairs_next_for_annotator(user=user, queue_id=queue.pk, count=1)
    assert [i.pair_id for i in items] == [pair.pk]
    (item,) = items
    if winner_is_a is None:
        choice = "tie"
    else:
        a_shown_left = item.left.content_sha256 == pair.candidate_a.content_sha256
        choice = "left" if a_shown_left == winner_is_a else "right"
    return judgment_submit(
        user=user,
        queue_id=queue.pk,
        pair_id=pair.pk,
        client_submission_id=uuid.uuid4(),
        choice=choice,
    )


def _adaptive_queue(**quality_settings):
    review = labeling_queue_create(
        name="review", allowed_group_names=["lead"], quality={"kind": "review"}, overlap=1
    )
    queue, (pair,) = queue_with_pairs(
        n_pairs=1,
        overlap=2,
        images=True,
        quality={"overlap_max": 4, "adaptive_margin": 2, "review_queue": review.pk}
        | quality_settings,
    )
    return queue, pair, review


@pytest.mark.django_db
def test_two_agreeing_votes_settle_a_pair_early():
    queue, pair, _ = _adaptive_queue()
    a, b, c = annotators(3)
    _vote(a, queue, pair, True)
    _vote(b, queue, pair, True)
    pair.refresh_from_db()
    assert (pair.judgments_needed, pair.resolution, pair.review) == (2, "confident", "")
    assert pairs_next_for_annotator(user=c, queue_id=queue.pk) == []


@pytest.mark.django_db
def test_a_split_pair_gets_more_votes_up_to_the_maximum_then_is_ambiguous_and_reviewed():
    queue, pair, review = _adaptive_queue()
    users = annotators(4)
    for user, vote in zip(users, (True, False, True, False), strict=True):
        _vote(user, queue, pair, vote)
        pair.refresh_from_db()
    assert (pair.judgments_needed, pair.judgments_count) == (4, 4)
    assert pair.resolution == "ambiguous" and pair.review == "pending" and not pair.disputed
    copy = Pair.objects.get(review_of=pair)
    assert copy.queue_id == review.pk and copy.judgments_needed == 1
    # a lead settles it in the review queue; the original records the settled answer
    from annotation.services.annotators import user_create

    lead = user_create(username="lead0", password="lead-pass", role=Role.LEAD)
    _vote(lead, review, copy, True)
    pair.refresh_from_db()
    assert pair.review == "settled" and pair.settled_choice == "winner"
    assert pair.settled_winner_id == pair.candidate_a_id and pair.settled_by_id == lead.pk


@pytest.mark.django_db
def test_a_majority_against_the_intended_winner_is_disputed():
    review = labeling_queue_create(
        name="review", allowed_group_names=["lead"], quality={"kind": "review"}, overlap=1
    )
    queue, (pair,) = queue_with_pairs(
        n_pairs=1, overlap=2, images=True, quality={"review_queue": review.pk}
    )
    Pair.objects.filter(pk=pair.pk).update(
        kind="counterfactual", intended_winner_id=pair.candidate_b_id
    )
    pair.refresh_from_db()
    a, b = annotators(2)
    _vote(a, queue, pair, True)
    _vote(b, queue, pair, True)
    pair.refresh_from_db()
    assert pair.resolution == "confident" and pair.disputed and pair.review == "pending"
    assert Pair.objects.filter(review_of=pair, queue=review).exists()


@pytest.mark.django_db(transaction=True)
def test_adaptive_overlap_keeps_its_invariants_with_annotators_in_parallel():
    queue, pairs = queue_with_pairs(
        n_pairs=30, overlap=2, quality={"overlap_max": 5, "adaptive_margin": 2}
    )
    users = annotators(10)
    errors: list[str] = []

    def work(index: int, user) -> None:
        client = client_for(user)
        empty = 0
        try:
            while empty < 5:
                response = client.post(next_url(queue), {"count": 2}, format="json")
                if response.status_code != 200:
                    errors.append(f"next {response.status_code}")
                    return
                items = response.json()["items"]
                # a split pair reopens right after the answer that filled it: ask again a few
                # times, as the labeling page does, before calling the queue done
                empty = 0 if items else empty + 1
                if not items:
                    time.sleep(0.2)
                for item in items:
                    digest = hashlib.sha256(f"{index}:{item['pair']}".encode()).digest()
                    choice = ("left", "right", "left", "tie")[digest[0] % 4]
                    done = client.post(
                        submit_url(queue),
                        {
                            "pair": item["pair"],
                            "client_submission_id": str(uuid.uuid4()),
                            "choice": choice,
                        },
                        format="json",
                    )
                    if done.status_code not in (200, 201, 409):
                        errors.append(f"submit {done.status_code} {done.content[:200]}")
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
    rows = Pair.objects.filter(queue=queue).annotate(
        counted=Count("judgments", filter=~Q(judgments__choice="skip"))
    )
    for pair in rows:
        # never more votes than the current target, the target within min..max, and a pair
        # at its target is settled (confident or ambiguous), never left without a decision
        assert pair.counted == pair.judgments_count <= pair.judgments_needed, pair.pk
        assert 2 <= pair.judgments_needed <= 5
        assert pair.reserved_count == 0
        assert pair.judgments_count == pair.judgments_needed
        assert pair.resolution in ("confident", "ambiguous"), (pair.pk, pair.resolution)
        if pair.resolution == "ambiguous":
            assert pair.judgments_needed == 5
    per_annotator = Counter(Judgment.objects.values_list("pair_id", "annotator_id"))
    assert max(per_annotator.values()) == 1
    assert Pair.objects.filter(judgments_needed__gt=2).exists()  # some pairs were split
    assert not Pair.objects.filter(judgments_count__gt=F("judgments_needed")).exists()


@pytest.mark.django_db(transaction=True)
def test_a_submit_that_waited_for_the_pair_lock_settles_it_on_every_vote():
    """The answer that fills a pair waits for the pair's lock while another answer to it is
    committed: its statement cannot see that judgment, so the pair is settled after it, on
    both votes (confident), not on its own one (which would want a third vote)."""
    queue, (pair,) = queue_with_pairs(
        n_pairs=1, overlap=2, quality={"overlap_max": 4, "adaptive_margin": 2}
    )
    first, second = annotators(2)

    def params(user) -> dict:
        (item,) = pairs_next_for_annotator(user=user, queue_id=queue.pk, count=1)
        a_left = item.left.content_sha256 == pair.candidate_a.content_sha256
        return {
            "queue": queue.pk, "user": user.pk, "pair": pair.pk, "sid": uuid.uuid4(),
            "choice": "left" if a_left else "right", "tags": Jsonb([]), "criteria": Jsonb({}),
            "duration": 1000,
        }  # fmt: skip

    first_params, second_params = params(first), params(second)
    held, release, results = threading.Event(), threading.Event(), {}

    def first_submit() -> None:  # stored, and held uncommitted until released
        try:
            with transaction.atomic():
                db.statement_run(statements.SUBMIT_SQL, first_params)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    def second_submit() -> None:
        try:
            results["second"] = judgment_submit(
                user=second, queue_id=queue.pk, pair_id=pair.pk,
                client_submission_id=second_params["sid"], choice=second_params["choice"],
            )  # fmt: skip
        finally:
            connection.close()

    holder = threading.Thread(target=first_submit)
    holder.start()
    assert held.wait(30), "the first submit did not run"
    waiter = threading.Thread(target=second_submit)
    waiter.start()
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the second submit never waited for the pair's lock")
    release.set()
    holder.join(30)
    waiter.join(30)
    assert "second" in results
    pair.refresh_from_db()
    assert (pair.judgments_count, pair.judgments_needed, pair.resolution) == (2, 2, "confident")


@pytest.mark.django_db
def test_answers_per_criterion_are_stored_and_checked():
    queue, (pair,) = queue_with_pairs(
        n_pairs=1,
        overlap=1,
        quality={
            "criteria": [
                {"name": "spatial", "question": "Which image follows the layout?"},
                {"name": "overall", "question": "Which image do you prefer overall?"},
            ]
        },
    )
    (user,) = annotators(1)
    client = client_for(user)
    listed = client.get(f"/api/labeling/queues/{queue.pk}/").json()
    assert [c["name"] for c in listed["criteria"]] == ["spatial", "overall"]
    (item,) = client.post(next_url(queue), {"count": 1}, format="json").json()["items"]
    body = {"pair": item["pair"], "client_submission_id": str(uuid.uuid4()), "choice": "left"}
    bad = client.post(submit_url(queue), body | {"criteria": {"style": "left"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "criteria.style"
    bad = client.post(submit_url(queue), body | {"criteria": {"overall": "up"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"].startswith("criteria")
    assert not Judgment.objects.exists()
    ok = client.post(submit_url(queue), body | {"criteria": {"overall": "right"}}, format="json")
    assert ok.status_code == 201
    assert Judgment.objects.get().criteria_choices == {"overall": "right"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"gold_rate": 0.9}, "quality.gold_rate"),
        ({"gold_rate": "lots"}, "quality.gold_rate"),
        ({"overlap_max": 1}, "quality.overlap_max"),
        ({"review_queue": 999999}, "quality.review_queue"),
        ({"criteria": [{"name": "Bad Name", "question": "q"}]}, "quality.criteria[0].name"),
        ({"criteria": [{"name": "a", "question": ""}]}, "quality.criteria[0].question"),
        ({"pause_accuracy": 2}, "quality.pause_accuracy"),
        ({"surprise": 1}, "quality.surprise"),
    ],
)
def test_bad_quality_settings_are_refused_naming_the_setting(given, field):
    from annotation.services.annotators import user_create

    lead = user_create(username="lead1", password="lead-pass", role=Role.LEAD)
    response = client_for(lead).post(
        "/api/labeling/manage/queues/",
        {"name": "q", "overlap": 2, "quality": given},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not LabelingQueue.objects.exists()


@pytest.mark.django_db
def test_quality_settings_are_kept_when_a_queue_is_changed_without_them():
    queue = labeling_queue_create(name="q", quality={"gold_rate": 0.2, "overlap_max": 5})
    labeling_queue_update(
        queue_id=queue.pk,
        name="q",
        instructions="",
        overlap=3,
        lease_seconds=600,
        prefetch=3,
        allowed_users=[],
        allowed_group_names=["annotator"],
    )
    queue.refresh_from_db()
    assert (queue.gold_rate, queue.overlap_max) == (0.2, 5)
    with pytest.raises(ValidationFailed):
        labeling_queue_update(
            queue_id=queue.pk,
            name="q",
            instructions="",
            overlap=6,
            lease_seconds=600,
            prefetch=3,
            allowed_users=[],
            allowed_group_names=["annotator"],
        )


@pytest.mark.django_db
def test_a_build_makes_checked_procedural_pairs_gold_and_proposes_the_others():
    from annotation.services.pairs import pairs_build

    for backend, expected in (("procedural", "procedural"), ("diffusers", "proposed")):
        campaign = CampaignFactory()
        config = GeneratorConfigFactory(
            backend=backend, **({"model_path": "/models/sd"} if backend == "diffusers" else {})
        )
        queue = labeling_queue_create(name=f"q-{backend}")
        for _ in range(20):
            original = PromptFactory(prompt_set=campaign.prompt_set)
            perturbed = PromptFactory(
                prompt_set=campaign.prompt_set,
                parent=original,
                perturbation_type="flip",
                num_perturbations=1,
            )
            CandidateFactory(
                campaign=campaign,
                prompt=original,
                config=config,
                seed=1,
                generation_params={"relations_hold": [True]},
            )
            CandidateFactory(campaign=campaign, prompt=perturbed, config=config, seed=1)
        pairs_build(
            queue_id=queue.pk,
            campaign_id=campaign.pk,
            kind="counterfactual",
            make_thumbnails=False,
            gold_share=0.5,
        )
        chosen = Pair.objects.filter(queue=queue).exclude(gold_source="")
        assert 4 <= chosen.count() <= 16
        assert set(chosen.values_list("gold_source", flat=True)) == {expected}
        assert chosen.filter(is_gold=True).count() == (
            chosen.count() if expected == "procedural" else 0
        )
        for pair in chosen.filter(is_gold=True):
            assert pair.gold_winner_id == pair.intended_winner_id
    proposed = list(Pair.objects.filter(gold_source="proposed").values_list("pk", flat=True))
    queue_id = Pair.objects.get(pk=proposed[0]).queue_id
    assert quality.pairs_gold_confirm(queue_id=queue_id, pair_ids=proposed, by=None) == len(
        proposed
    )
    assert Pair.objects.filter(pk__in=proposed, is_gold=True, gold_source="confirmed").count() == (
        len(proposed)
    )


@pytest.mark.django_db
def test_a_paused_annotator_opening_the_labeling_page_is_told_why(client):
    queue, _ = queue_with_pairs(n_pairs=2, overlap=1)
    (user,) = annotators(1)
    stream(user, queue, 1)
    lead = annotators(1, prefix="lead")[0]
    quality.annotator_queue_pause(
        queue_id=queue.pk, annotator_id=user.pk, by=lead, reason="too fast"
    )
    client.force_login(user)
    page = client.get(f"/label/{queue.pk}/")
    assert page.status_code == 409
    assert "a lead paused your work on this queue" in page.content.decode()
    quality.annotator_queue_resume(queue_id=queue.pk, annotator_id=user.pk, by=lead)
    assert client.get(f"/label/{queue.pk}/").status_code == 200
