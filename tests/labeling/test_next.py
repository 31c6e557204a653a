"""`next` and heartbeats: who gets which pair, in which order, for how long."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Judgment, Pair
from annotation.services.assignment import OPEN_WINDOW
from annotation.services.judgments import judgment_submit
from annotation.services.pairs import pairs_build
from tests.factories import CampaignFactory, GeneratorConfigFactory, PromptFactory
from tests.labeling.factories import (
    annotators,
    candidate_with_image,
    client_for,
    image_shown,
    next_url,
    past_answers,
    queue_for_annotators,
    queue_with_pairs,
)

pytestmark = pytest.mark.django_db


def leased_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["pair"] for item in response.json()["items"]]


def submit(user, queue, pair_id, choice="left", sid=None):
    return judgment_submit(
        user=user,
        queue_id=queue.pk,
        pair_id=pair_id,
        client_submission_id=sid or uuid.uuid4(),
        choice=choice,
    )


def test_next_leases_up_to_count_pairs_each_with_a_prompt_and_two_image_urls():
    queue, pairs = queue_with_pairs(n_pairs=5, images=True)
    (ann,) = annotators(1)

    response = client_for(ann).post(next_url(queue), {"count": 2}, format="json")

    assert leased_ids(response) == [pairs[0].pk, pairs[1].pk]
    item = response.json()["items"][0]
    assert set(item) == {"pair", "prompt", "left", "right", "lease_expires_at"}
    assert item["prompt"] == {
        "text": pairs[0].prompt.text,
        "objects": pairs[0].prompt.structure["objects"],
        "relations": pairs[0].prompt.structure["relations"],
        "scene": None,
    }
    assert item["left"]["url"].startswith("/api/labeling/images/")
    assert item["right"]["url"].startswith("/api/labeling/images/")
    assert item["left"]["url"] != item["right"]["url"]
    leases = Assignment.objects.filter(annotator=ann).order_by("pair_id")
    assert [(a.pair_id, a.status) for a in leases] == [
        (pairs[0].pk, "active"),
        (pairs[1].pk, "active"),
    ]
    assert {a.expires_at - a.leased_at for a in leases} == {timedelta(seconds=600)}
    assert list(
        Pair.objects.order_by("id").values_list("reserved_count", "fresh", "judgments_count")
    ) == [(1, False, 0), (1, False, 0), (0, True, 0), (0, True, 0), (0, True, 0)]


def test_next_without_count_takes_the_queues_prefetch():
    queue, pairs = queue_with_pairs(n_pairs=6, prefetch=4)
    (ann,) = annotators(1)

    response = client_for(ann).post(next_url(queue), {}, format="json")

    assert leased_ids(response) == [p.pk for p in pairs[:4]]


def test_asking_again_returns_the_held_leases_and_takes_no_more():
    queue, pairs = queue_with_pairs(n_pairs=6)
    (ann,) = annotators(1)
    client = client_for(ann)

    first = leased_ids(client.post(next_url(queue), {"count": 3}, format="json"))
    again = leased_ids(client.post(next_url(queue), {"count": 3}, format="json"))

    assert again == first == [p.pk for p in pairs[:3]]
    assert Assignment.objects.filter(annotator=ann).count() == 3
    assert sum(Pair.objects.values_list("reserved_count", flat=True)) == 3


def test_pairs_the_client_already_has_come_back_as_ids_only():
    queue, pairs = queue_with_pairs(n_pairs=6)
    (ann,) = annotators(1)
    client = client_for(ann)
    client.post(next_url(queue), {"count": 3}, format="json")
    submit(ann, queue, pairs[0].pk)

    response = client.post(
        next_url(queue), {"count": 3, "known": [pairs[1].pk, pairs[0].pk, 999]}, format="json"
    )

    # pairs[1] is still held: counted, not resent; pairs[0] was answered: gone; 999 never was.
    assert response.json()["known_held"] == [pairs[1].pk]
    assert leased_ids(response) == [pairs[2].pk, pairs[3].pk]
    assert Assignment.objects.filter(annotator=ann, status="active").count() == 3


def test_next_after_a_submit_returns_the_held_pairs_first_and_tops_up_with_one_new():
    queue, pairs = queue_with_pairs(n_pairs=6)
    (ann,) = annotators(1)
    client = client_for(ann)
    client.post(next_url(queue), {"count": 3}, format="json")
    submit(ann, queue, pairs[0].pk)

    response = client.post(next_url(queue), {"count": 3}, format="json")

    assert leased_ids(response) == [pairs[1].pk, pairs[2].pk, pairs[3].pk]
    assert Assignment.objects.filter(annotator=ann).count() == 4


def test_next_never_serves_a_pair_the_annotator_judged_or_skipped():
    queue, pairs = queue_with_pairs(n_pairs=3)
    ann, other = annotators(2)
    client_for(ann).post(next_url(queue), {"count": 2}, format="json")
    submit(ann, queue, pairs[0].pk, "left")
    submit(ann, queue, pairs[1].pk, "skip")

    again = leased_ids(client_for(ann).post(next_url(queue), {"count": 3}, format="json"))
    for_other = leased_ids(client_for(other).post(next_url(queue), {"count": 3}, format="json"))

    assert again == [pairs[2].pk]
    # The judged pair (one answer) comes first for the others, the skipped one (no answer,
    # started) next, then the one the first annotator holds.
    assert for_other == [pairs[0].pk, pairs[1].pk, pairs[2].pk]


def test_open_leases_plus_judgments_never_exceed_the_overlap():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=2)
    a, b, c = annotators(3)

    assert leased_ids(client_for(a).post(next_url(queue), {"count": 1}, format="json")) == [pair.pk]
    assert leased_ids(client_for(b).post(next_url(queue), {"count": 1}, format="json")) == [pair.pk]
    assert leased_ids(client_for(c).post(next_url(queue), {"count": 1}, format="json")) == []
    submit(a, queue, pair.pk)
    assert leased_ids(client_for(c).post(next_url(queue), {"count": 1}, format="json")) == []

    pair.refresh_from_db()
    assert (pair.judgments_count, pair.reserved_count) == (1, 1)
    assert Assignment.objects.filter(annotator=c).count() == 0


def test_pairs_come_by_priority_then_closest_to_completion_then_oldest():
    queue, pairs = queue_with_pairs(n_pairs=6, overlap=3, priority_of=lambda i: 5 if i == 4 else 0)
    # Pairs other annotators have started (their judgments are not this test's subject).
    Pair.objects.filter(pk=pairs[1].pk).update(judgments_count=2, fresh=False)
    Pair.objects.filter(pk=pairs[3].pk).update(judgments_count=1, fresh=False)
    (ann,) = annotators(1)

    order = leased_ids(client_for(ann).post(next_url(queue), {"count": 6}, format="json"))

    assert order == [pairs[i].pk for i in (4, 1, 3, 0, 2, 5)]


def test_an_expired_lease_goes_back_to_the_pool():
    queue, (pair,) = queue_with_pairs(n_pairs=1, overlap=1)
    a, b = annotators(2)
    client_for(a).post(next_url(queue), {"count": 1}, format="json")
    Assignment.objects.filter(annotator=a).update(
        expires_at=timezone.now() - timedelta(seconds=1),
        leased_at=timezone.now() - timedelta(seconds=700),
    )

    taken = leased_ids(client_for(b).post(next_url(queue), {"count": 1}, format="json"))

    assert taken == [pair.pk]
    assert Assignment.objects.get(annotator=a).status == "expired"
    assert Assignment.objects.get(annotator=b).status == "active"
    pair.refresh_from_db()
    assert (pair.judgments_count, pair.reserved_count) == (0, 1)


def expire(lease_owner) -> None:
    """Make `lease_owner`'s active leases run out (a tab closed ten minutes ago)."""
    Assignment.objects.filter(annotator=lease_owner, status="active").update(
        leased_at=timezone.now() - timedelta(minutes=20),
        expires_at=timezone.now() - timedelta(minutes=10),
    )


def test_every_next_that_finds_a_lease_due_sweeps_it_so_the_next_caller_gets_its_slot():
    # One-answer pairs (overlap 1) and plenty of fresh ones, so no answer comes up short.
    queue, pairs = queue_with_pairs(n_pairs=6, overlap=1)
    a, b, c, d, e = annotators(5)
    taken = pairs[0]
    assert leased_ids(client_for(a).post(next_url(queue), {"count": 1}, format="json")) == [
        taken.pk
    ]
    expire(a)

    # b is served a fresh pair, and its request sweeps a's lease ...
    assert leased_ids(client_for(b).post(next_url(queue), {"count": 1}, format="json")) == [
        pairs[1].pk
    ]
    assert Assignment.objects.get(annotator=a).status == "expired"
    # ... so c, right after, gets the pair a let go: first in serving order again
    assert leased_ids(client_for(c).post(next_url(queue), {"count": 1}, format="json")) == [
        taken.pk
    ]
    # and at once again (no per-process sweep interval to wait for)
    expire(c)
    assert leased_ids(client_for(d).post(next_url(queue), {"count": 1}, format="json")) == [
        pairs[2].pk
    ]
    assert leased_ids(client_for(e).post(next_url(queue), {"count": 1}, format="json")) == [
        taken.pk
    ]
    taken.refresh_from_db()
    assert (taken.judgments_count, taken.reserved_count) == (0, 1)


def test_an_annotator_told_nothing_is_left_gets_a_pair_freed_anywhere_at_the_next_call():
    # Nothing left for her: more pairs she judged than the window (still open to others) at
    # the front of the serving order, and the others full.
    queue, pairs = queue_with_pairs(n_pairs=OPEN_WINDOW + 10, overlap=3)
    (annotator,) = annotators(1)
    mine, rest = pairs[: OPEN_WINDOW + 2], pairs[OPEN_WINDOW + 2 :]
    past_answers(annotator, mine)
    Pair.objects.filter(pk__in=[p.pk for p in mine]).update(fresh=False, judgments_count=2)
    Pair.objects.filter(pk__in=[p.pk for p in rest]).update(fresh=False, judgments_count=3)
    client = client_for(annotator)
    assert leased_ids(client.post(next_url(queue), {"count": 2}, format="json")) == []

    # when a slot opens behind all of hers (someone's answer taken back)
    Pair.objects.filter(pk=rest[5].pk).update(judgments_count=2)

    # then her very next call is served it
    assert leased_ids(client.post(next_url(queue), {"count": 2}, format="json")) == [rest[5].pk]


def test_heartbeat_renews_held_leases_and_names_the_lost_ones():
    queue, pairs = queue_with_pairs(n_pairs=3)
    (ann,) = annotators(1)
    client = client_for(ann)
    client.post(next_url(queue), {"count": 2}, format="json")
    soon = timezone.now() + timedelta(seconds=30)
    Assignment.objects.filter(annotator=ann).update(expires_at=soon)
    before = timezone.now()

    response = client.post(
        f"/api/labeling/queues/{queue.pk}/heartbeat/",
        {"pairs": [pairs[0].pk, pairs[2].pk, 999999]},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["pair"] for r in body["renewed"]] == [pairs[0].pk]
    assert body["lost"] == [pairs[2].pk, 999999]
    renewed = Assignment.objects.get(annotator=ann, pair=pairs[0])
    untouched = Assignment.objects.get(annotator=ann, pair=pairs[1])
    # the lease runs for the queue's lease_seconds from the heartbeat on
    assert before + timedelta(seconds=600) <= renewed.expires_at
    assert renewed.expires_at <= timezone.now() + timedelta(seconds=600)
    assert untouched.expires_at == soon


def test_left_and_right_are_randomised_per_annotator_and_pair_and_stored():
    queue, pairs = queue_with_pairs(n_pairs=40, images=True)
    (ann,) = annotators(1)
    client = client_for(ann)
    items = client.post(next_url(queue), {"count": 20}, format="json").json()["items"]
    for pair_id in [item["pair"] for item in items]:
        submit(ann, queue, pair_id, "tie")
    items += client.post(next_url(queue), {"count": 20}, format="json").json()["items"]

    leases = {a.pair_id: a for a in Assignment.objects.filter(annotator=ann)}
    by_id = {p.pk: p for p in pairs}
    a_left = sum(1 for p in pairs if leases[p.pk].left_candidate_id == p.candidate_a_id)
    assert 0 < a_left < 40
    for item in items:  # what the screen shows is what was stored
        lease = leases[item["pair"]]
        pair = by_id[item["pair"]]
        right = (
            pair.candidate_b if lease.left_candidate_id == pair.candidate_a_id else pair.candidate_a
        )
        shown = image_shown(ann, item["left"]["url"])
        assert shown.content_sha256 == lease.left_candidate.content_sha256
        assert image_shown(ann, item["right"]["url"]).content_sha256 == right.content_sha256
    assert set(Judgment.objects.values_list("left_candidate_id", flat=True)) == {
        leases[item["pair"]].left_candidate_id for item in items[:20]
    }


def test_an_annotator_with_a_long_history_still_gets_every_pair_they_may_take():
    # 60 started pairs (more than the window `next` looks at first) that this annotator
    # judged, still waiting for others, ahead of the only pair left for them.
    queue, pairs = queue_with_pairs(n_pairs=OPEN_WINDOW + 13, overlap=3)
    (veteran,) = annotators(1)
    for pair in pairs[:-1]:
        Assignment.objects.create(
            pair=pair,
            annotator=veteran,
            left_candidate=pair.candidate_a,
            status="submitted",
            leased_at=timezone.now() - timedelta(minutes=5),
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        Judgment.objects.create(
            pair=pair,
            annotator=veteran,
            client_submission_id=f"00000000-0000-4000-8000-{pair.pk:012d}",
            left_candidate=pair.candidate_a,
            choice="left",
            winner=pair.candidate_a,
        )
    Pair.objects.filter(pk__in=[p.pk for p in pairs[:-1]]).update(judgments_count=1, fresh=False)
    last = pairs[-1]
    Pair.objects.filter(pk=last.pk).update(fresh=False)  # started once, its lease ran out

    taken = leased_ids(client_for(veteran).post(next_url(queue), {"count": 3}, format="json"))

    assert taken == [last.pk]


def test_a_counterfactual_pair_is_judged_against_the_original_prompt_and_hides_the_rest():
    campaign = CampaignFactory()
    config = GeneratorConfigFactory(name="secret-model-xl")
    original = PromptFactory(prompt_set=campaign.prompt_set, text="a cat left of a dog")
    perturbed = PromptFactory(
        prompt_set=campaign.prompt_set,
        text="a dog left of a cat",
        parent=original,
        perturbation_type="swap",
        num_perturbations=1,
        perturbation={"swap": ["cat", "dog"]},
    )
    winner = candidate_with_image(campaign=campaign, prompt=original, config=config, seed=777)
    candidate_with_image(campaign=campaign, prompt=perturbed, config=config, seed=777)
    queue = queue_for_annotators(name="cf")
    pairs_build(
        queue_id=queue.pk, campaign_id=campaign.pk, kind="counterfactual", make_thumbnails=False
    )
    (ann,) = annotators(1)

    response = client_for(ann).post(next_url(queue), {"count": 1}, format="json")

    item = response.json()["items"][0]
    assert item["prompt"]["text"] == "a cat left of a dog"
    body = json.dumps(response.json())
    for secret in ("secret-model-xl", "777", "a dog left of a cat", "swap", str(winner.pk)):
        assert secret not in body
    keys: set[str] = set()

    def collect(value):
        if isinstance(value, dict):
            keys.update(value)
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    collect(response.json())
    assert keys == {
        "items", "known_held", "pair", "prompt", "text", "objects", "relations", "scene",
        "left", "right", "url", "lease_expires_at", "id", "name", "count", "attributes",
        "subject", "relation",
    }  # fmt: skip


def test_a_lone_annotator_past_the_window_is_served_in_serving_order_from_the_database_alone():
    # More judged pairs of her own than the window at the front (others still to judge them),
    # no fresh pairs: every `next` comes up short in the window and scans the started pairs,
    # so each answer is the first pair she may take in serving order, as the database has it
    # now. A pair that rises ahead of the others meanwhile (`early`, judged by someone else)
    # is served at the next call, whichever process answers it.
    mine_n = OPEN_WINDOW + 8
    queue, pairs = queue_with_pairs(
        n_pairs=1 + mine_n + 4, overlap=3, priority_of=lambda i: 0 if i > mine_n + 2 else 1
    )
    (annotator,) = annotators(1)
    early, mine, rest = pairs[0], pairs[1 : 1 + mine_n], pairs[1 + mine_n :]
    past_answers(annotator, mine)
    Pair.objects.filter(pk__in=[p.pk for p in mine]).update(judgments_count=2)
    Pair.objects.filter(pk=rest[0].pk).update(judgments_count=1)
    Pair.objects.update(fresh=False)
    # serving order of what she may take: rest[0] (1, 1), early and rest[1] (1, 0), then
    # rest[2], rest[3] (priority 0)
    client = client_for(annotator)

    served = []
    while True:
        taken = leased_ids(client.post(next_url(queue), {"count": 1}, format="json"))
        if not taken:
            break
        served += taken
        if len(served) == 1:
            Pair.objects.filter(pk=early.pk).update(judgments_count=1)  # someone else's answer
        submit(annotator, queue, taken[0])

    assert served == [rest[0].pk, early.pk, rest[1].pk, rest[2].pk, rest[3].pk]
