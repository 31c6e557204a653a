"""Pair building: same-prompt (all or k sampled), counterfactual, stored once, the cpu task."""

import pytest

from annotation.models import Pair, PairBuild
from annotation.services.pairs import pair_build_run, pairs_add, pairs_build
from annotation.tasks import pair_build_task, thumbnails_task
from config.celery import Queue
from config.errors import NotFound, ValidationFailed
from generation_workers.models import Candidate
from generation_workers.services.config_rules import generator_config_params_hash
from tests.factories import (
    CampaignFactory,
    CandidateFactory,
    GeneratorConfigFactory,
    PromptFactory,
)
from tests.labeling.factories import queue_for_annotators

pytestmark = pytest.mark.django_db


def pair_keys(queue) -> set[tuple]:
    return set(
        Pair.objects.filter(queue=queue).values_list(
            "candidate_a_id", "candidate_b_id", "kind", "prompt_id", "intended_winner_id"
        )
    )


def perturbed_of(original, **kwargs):
    return PromptFactory(
        prompt_set=original.prompt_set,
        parent=original,
        perturbation_type="flip",
        num_perturbations=1,
        group_key=original.group_key,
        **kwargs,
    )


def test_same_prompt_builds_every_pair_of_each_prompt_once():
    campaign = CampaignFactory()
    config = GeneratorConfigFactory()
    p1, p2 = PromptFactory.create_batch(2, prompt_set=campaign.prompt_set)
    a, b, c = CandidateFactory.create_batch(3, campaign=campaign, prompt=p1, config=config)
    d, e = CandidateFactory.create_batch(2, campaign=campaign, prompt=p2, config=config)
    CandidateFactory(campaign=campaign, prompt=p2, config=config, status=Candidate.Status.PENDING)
    CandidateFactory(prompt=p2, config=config)  # another campaign's image of the same prompt
    queue = queue_for_annotators(overlap=4)

    counts = pairs_build(queue_id=queue.pk, campaign_id=campaign.pk, kind="same_prompt")

    assert (counts.created, counts.existing) == (4, 0)
    assert pair_keys(queue) == {
        (a.pk, b.pk, "same_prompt", p1.pk, None),
        (a.pk, c.pk, "same_prompt", p1.pk, None),
        (b.pk, c.pk, "same_prompt", p1.pk, None),
        (d.pk, e.pk, "same_prompt", p2.pk, None),
    }
    assert set(Pair.objects.values_list("judgments_needed", "priority", "fresh")) == {(4, 0, True)}

    again = pairs_build(queue_id=queue.pk, campaign_id=campaign.pk, kind="same_prompt")

    assert (again.created, again.existing) == (0, 4)
    assert Pair.objects.count() == 4


def test_k_sampled_pairs_per_prompt_prefer_pairs_across_configs():
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    x, y = GeneratorConfigFactory.create_batch(2)
    x1, x2 = CandidateFactory.create_batch(2, campaign=campaign, prompt=prompt, config=x)
    y1, y2 = CandidateFactory.create_batch(2, campaign=campaign, prompt=prompt, config=y)
    across = {
        (min(i.pk, j.pk), max(i.pk, j.pk)) for i in (x1, x2) for j in (y1, y2)
    }  # fmt: skip
    q4, q5, q5_again = (queue_for_annotators(name=n) for n in ("k4", "k5", "k5b"))

    pairs_build(queue_id=q4.pk, campaign_id=campaign.pk, kind="same_prompt", sample_per_prompt=4)
    pairs_build(queue_id=q5.pk, campaign_id=campaign.pk, kind="same_prompt", sample_per_prompt=5)
    pairs_build(
        queue_id=q5_again.pk, campaign_id=campaign.pk, kind="same_prompt", sample_per_prompt=5
    )

    def ab(queue):
        return set(Pair.objects.filter(queue=queue).values_list("candidate_a_id", "candidate_b_id"))

    assert ab(q4) == across
    assert len(ab(q5)) == 5 and across < ab(q5)
    assert ab(q5_again) == ab(q5)  # the sample is reproducible (seeded per prompt)


def test_counterfactual_pairs_match_config_and_seed_and_name_the_original_as_winner():
    campaign = CampaignFactory()
    original = PromptFactory(prompt_set=campaign.prompt_set)
    flipped = perturbed_of(original)
    cfg_a, cfg_b = GeneratorConfigFactory.create_batch(2)

    def cand(prompt, config, seed):
        return CandidateFactory(campaign=campaign, prompt=prompt, config=config, seed=seed)

    oa1, oa2, ob1 = cand(original, cfg_a, 1), cand(original, cfg_a, 2), cand(original, cfg_b, 1)
    fa1, fb1, fb9 = cand(flipped, cfg_a, 1), cand(flipped, cfg_b, 1), cand(flipped, cfg_b, 9)
    exact, by_config = queue_for_annotators(name="exact"), queue_for_annotators(name="cfg")

    pairs_build(queue_id=exact.pk, campaign_id=campaign.pk, kind="counterfactual")
    pairs_build(
        queue_id=by_config.pk,
        campaign_id=campaign.pk,
        kind="counterfactual",
        counterfactual_match="config",
    )

    def key(perturbed, orig):
        return (min(perturbed.pk, orig.pk), max(perturbed.pk, orig.pk), "counterfactual",
                original.pk, orig.pk)  # fmt: skip

    assert pair_keys(exact) == {key(fa1, oa1), key(fb1, ob1)}
    assert pair_keys(by_config) == {key(fa1, oa1), key(fa1, oa2), key(fb1, ob1), key(fb9, ob1)}


def test_priority_and_judgments_needed_are_set_per_build():
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    CandidateFactory.create_batch(2, campaign=campaign, prompt=prompt)
    queue = queue_for_annotators(overlap=3)

    pairs_build(
        queue_id=queue.pk,
        campaign_id=campaign.pk,
        kind="same_prompt",
        priority=7,
        judgments_needed=5,
    )

    assert list(Pair.objects.values_list("priority", "judgments_needed")) == [(7, 5)]


def test_the_build_task_runs_on_the_cpu_queue_and_records_its_counts(lead_client):
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    CandidateFactory.create_batch(3, campaign=campaign, prompt=prompt)
    queue = queue_for_annotators()
    for task, name in [
        (pair_build_task, "annotation.pairs.build"),
        (thumbnails_task, "annotation.thumbnails.ensure"),
    ]:
        routed = pair_build_task.app.amqp.router.route({}, task.name, (), {}, task)
        assert (task.name, routed["queue"].name) == (name, Queue.CPU)
    assert pair_build_task.acks_late and pair_build_task.reject_on_worker_lost

    response = lead_client.post(
        f"/api/labeling/manage/queues/{queue.pk}/pair-builds/",
        {"campaign": campaign.pk, "kind": "same_prompt", "options": {"make_thumbnails": False}},
        format="json",
    )
    assert response.status_code == 202, response.content
    build_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    pair_build_task.apply(kwargs={"pair_build_id": build_id})  # what the cpu worker runs

    build = PairBuild.objects.get(pk=build_id)
    assert (build.status, build.pairs_created, build.pairs_existing) == ("done", 3, 0)
    assert Pair.objects.filter(queue=queue).count() == 3
    detail = lead_client.get(f"/api/labeling/manage/pair-builds/{build_id}/").json()
    assert (detail["status"], detail["pairs_created"]) == ("done", 3)
    # A redelivered message does nothing.
    assert pair_build_run(pair_build_id=build_id).pairs_created == 3
    assert Pair.objects.filter(queue=queue).count() == 3


def test_a_build_that_cannot_run_is_marked_failed_with_its_reason():
    campaign = CampaignFactory()
    queue = queue_for_annotators()
    build = PairBuild.objects.create(
        queue=queue, campaign=campaign, kind="same_prompt", options={"sample_per_prompt": -1}
    )

    pair_build_run(pair_build_id=build.pk)

    build.refresh_from_db()
    assert build.status == "failed"
    assert build.error == "options.sample_per_prompt: must be an integer from 1 to 10000"
    assert Pair.objects.count() == 0


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"kind": "same_prompt", "options": {"sample_per_prompt": 0}}, 400,
         "options.sample_per_prompt"),
        ({"kind": "same_prompt", "options": {"pairs": 3}}, 400, "options.pairs"),
        ({"kind": "same_prompt", "options": {"priority": "high"}}, 400, "options.priority"),
        ({"kind": "counterfactual", "options": {"counterfactual_match": "any"}}, 400,
         "options.counterfactual_match"),
        ({"kind": "triplet"}, 400, "kind"),
        ({"kind": "same_prompt", "campaign": 999999}, 404, "campaign"),
    ],
)  # fmt: skip
def test_a_bad_build_request_is_a_4xx_naming_the_field_and_queues_nothing(
    lead_client, body, status, field
):
    campaign = CampaignFactory()
    queue = queue_for_annotators()

    response = lead_client.post(
        f"/api/labeling/manage/queues/{queue.pk}/pair-builds/",
        {"campaign": campaign.pk, **body},
        format="json",
    )

    assert response.status_code == status
    assert response.json()["field"] == field
    assert PairBuild.objects.count() == 0


def test_a_build_into_an_unknown_queue_is_a_404(lead_client):
    campaign = CampaignFactory()

    response = lead_client.post(
        "/api/labeling/manage/queues/999999/pair-builds/",
        {"campaign": campaign.pk, "kind": "same_prompt"},
        format="json",
    )

    assert response.status_code == 404
    assert response.json()["field"] == "queue"
    assert PairBuild.objects.count() == 0


def test_chosen_pairs_are_added_in_their_order_once_and_bad_input_is_refused():
    # given three candidates of one prompt and a queue
    campaign = CampaignFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    a, b, c = sorted(
        CandidateFactory.create_batch(3, campaign=campaign, prompt=prompt), key=lambda x: x.pk
    )
    queue = queue_for_annotators()
    keys = [(b.pk, c.pk, prompt.pk, None), (a.pk, b.pk, prompt.pk, None)]

    # when a service adds two chosen pairs, then the same ones again
    first = pairs_add(queue_id=queue.pk, kind="same_prompt", keys=keys, priority=4)
    again = pairs_add(queue_id=queue.pk, kind="same_prompt", keys=keys)

    # then they are stored once, in the order given, with the queue's overlap
    assert (first.created, first.existing, again.created, again.existing) == (2, 0, 0, 2)
    rows = Pair.objects.filter(queue=queue).order_by("id")
    assert [(p.candidate_a_id, p.candidate_b_id) for p in rows] == [(b.pk, c.pk), (a.pk, b.pk)]
    assert {(p.priority, p.judgments_needed) for p in rows} == {(4, queue.overlap)}

    # and an unknown queue or kind is refused with the field named, nothing stored
    with pytest.raises(NotFound) as unknown:
        pairs_add(queue_id=queue.pk + 999, kind="same_prompt", keys=keys)
    with pytest.raises(ValidationFailed) as bad_kind:
        pairs_add(queue_id=queue.pk, kind="sideways", keys=[(a.pk, c.pk, prompt.pk, None)])
    assert (unknown.value.field, bad_kind.value.field) == ("queue", "kind")
    assert Pair.objects.filter(queue=queue).count() == 2


def test_images_an_earlier_campaign_made_for_this_campaigns_keys_are_paired_too():
    # given a campaign whose key (prompt, config, seed 0) an earlier campaign had rendered
    config = GeneratorConfigFactory()
    earlier = CampaignFactory()
    campaign = CampaignFactory(prompt_set=earlier.prompt_set, seeds_per_prompt=2, base_seed=0)
    campaign.configs.add(config)
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    key_hash = generator_config_params_hash(config=config)

    def made(by, seed):
        return CandidateFactory(
            campaign=by, prompt=prompt, config=config, seed=seed, params_hash=key_hash
        )

    reused, own = made(earlier, 0), made(campaign, 1)
    made(earlier, 7)  # not one of this campaign's seeds
    queue = queue_for_annotators()

    # when its pairs are built
    counts = pairs_build(queue_id=queue.pk, campaign_id=campaign.pk, kind="same_prompt")

    # then the reused image is paired with the campaign's own, and nothing else
    assert counts.created == 1
    assert pair_keys(queue) == {(reused.pk, own.pk, "same_prompt", prompt.pk, None)}
