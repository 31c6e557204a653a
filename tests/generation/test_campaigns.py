"""Campaigns: validation, launch (every key once, counterfactual seeds), cancel, retry, progress."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from generation_workers.models import Campaign, Candidate, GeneratorConfig, PromptSet
from generation_workers.selectors.campaigns import (
    campaign_candidates_select,
    campaign_progress,
)
from generation_workers.services.campaigns import (
    campaign_cancel,
    campaign_create,
    campaign_launch,
    campaign_retry_failed,
)
from generation_workers.services.configs import generator_config_create
from tests.generation.conftest import prompt_set_make, queue_purge, queue_taken

pytestmark = pytest.mark.django_db


def queued(queue: str) -> list[list]:
    """The batches waiting in a queue (config id, candidate ids), taken off the queue."""
    return [payload[0] for _, payload in queue_taken(queue)]


@pytest.fixture
def procedural(own_queue) -> GeneratorConfig:
    return generator_config_create(
        name="proc", backend="procedural", width=64, height=64, batch_size=3, queue=own_queue
    )


def launch(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return campaign_launch(campaign_id=campaign.pk)


def test_launch_plans_every_key_once_with_the_same_seeds_for_originals_and_perturbations(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    # given 3 originals with one perturbed copy each, two configs and 2 seeds from 7
    prompt_set = prompt_set_make(originals=3)
    other = generator_config_create(name="proc-b", backend="procedural", width=64, height=64,
                                    queue=own_queue, extra_args={"violate": 0})  # fmt: skip
    campaign = campaign_create(
        name="c", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk, other.pk],
        seeds_per_prompt=2, base_seed=7,
    )  # fmt: skip
    assert Candidate.objects.count() == 0

    # when it is launched
    campaign = launch(campaign, django_capture_on_commit_callbacks)

    # then 6 prompts x 2 configs x 2 seeds are planned, the set is locked, batches are queued
    assert (campaign.status, campaign.total_items, campaign.reused_items) == ("running", 24, 0)
    assert campaign.started_at is not None
    prompt_set.refresh_from_db()
    assert prompt_set.is_locked
    rows = list(Candidate.objects.filter(campaign=campaign).select_related("prompt"))
    keys = {(c.prompt_id, c.config_id, c.seed) for c in rows}
    assert len(keys) == 24
    for perturbed in [c for c in rows if c.prompt.parent_id]:
        assert (perturbed.prompt.parent_id, perturbed.config_id, perturbed.seed) in keys
    assert {c.seed for c in rows} == {7, 8}
    assert {c.status for c in rows} == {"pending"}
    batches = queued(own_queue)
    assert sorted(len(ids) for _, ids in batches) == [3] * 4 + [4] * 3
    assert sorted(i for _, ids in batches for i in ids) == sorted(c.pk for c in rows)


def test_a_second_launch_is_refused_and_changes_nothing(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=1)
    campaign = campaign_create(name="c", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk])
    launch(campaign, django_capture_on_commit_callbacks)
    queue_purge(own_queue)
    with pytest.raises(Conflict) as refused:
        launch(campaign, django_capture_on_commit_callbacks)
    assert refused.value.detail == "campaign 'c' is running; only a draft can be launched"
    assert Candidate.objects.count() == 2
    assert queued(own_queue) == []


def test_the_prompt_filter_picks_originals_and_their_perturbations_follow(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=4)
    only_val = campaign_create(
        name="val", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk],
        prompt_filter={"splits": ["val"], "relations": ["above", "right_of"]},
    )  # fmt: skip
    launched = launch(only_val, django_capture_on_commit_callbacks)
    texts = sorted(
        Candidate.objects.filter(campaign=launched).values_list("prompt__text", flat=True)
    )
    assert texts == ["a photo of a dog above a cup", "a photo of a dog below a cup"]
    originals_only = campaign_create(
        name="first", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk],
        prompt_filter={"limit": 1}, include_perturbations=False,
    )  # fmt: skip
    launched = launch(originals_only, django_capture_on_commit_callbacks)
    assert list(
        Candidate.objects.filter(campaign=launched).values_list("prompt__text", flat=True)
    ) == ["a photo of a cat left of a dog"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "name must be 1 to 200 characters"),
        ({"prompt_set_id": 999999}, "prompt_set", "no prompt set 999999"),
        ({"config_ids": []}, "configs", "configs must be a non-empty list of config ids"),
        ({"config_ids": [999999]}, "configs", "no generator config 999999"),
        (
            {"seeds_per_prompt": 0},
            "seeds_per_prompt",
            "seeds_per_prompt must be an integer from 1 to 1000",
        ),
        (
            {"base_seed": -1},
            "base_seed",
            "base_seed must be an integer from 0 to 2**63 - 1 - seeds_per_prompt",
        ),
        (
            {"prompt_filter": {"split": ["val"]}},
            "prompt_filter.split",
            "unknown filter 'split'; use splits, tiers, relations, objects, templates, "
            "prompt_ids, limit",
        ),
        ({"prompt_filter": {"splits": ["dev"]}}, "prompt_filter.splits", "unknown split 'dev'"),
        (
            {"prompt_filter": {"limit": 0}},
            "prompt_filter.limit",
            "limit must be a positive integer",
        ),
        (
            {"prompt_filter": {"objects": ["unicorn"]}},
            "prompt_filter",
            "the prompt filter selects no prompt of the set",
        ),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_field(procedural, change, field, message):
    prompt_set = prompt_set_make(originals=1)
    values = {"name": "c", "prompt_set_id": prompt_set.pk, "config_ids": [procedural.pk], **change}
    with pytest.raises(ValidationFailed) as refused:
        campaign_create(**values)
    assert (refused.value.field, refused.value.detail) == (field, message)
    assert Campaign.objects.count() == 0


def test_a_building_set_or_a_failed_config_cannot_be_used(procedural):
    building = PromptSet.objects.create(name="b", source="template", status="building")
    with pytest.raises(ValidationFailed) as refused:
        campaign_create(name="c", prompt_set_id=building.pk, config_ids=[procedural.pk])
    assert refused.value.detail == "prompt set b v1 is building, not ready"
    GeneratorConfig.objects.filter(pk=procedural.pk).update(
        check_status="failed", check_message="boom"
    )
    with pytest.raises(ValidationFailed) as refused:
        campaign_create(name="c", prompt_set_id=prompt_set_make().pk, config_ids=[procedural.pk])
    assert (
        refused.value.detail == "config 'proc' failed its check (boom); fix it and check it again"
    )
    assert Campaign.objects.count() == 0


def test_keys_rendered_by_an_earlier_campaign_are_reused_not_planned_again(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=1)
    first = campaign_create(name="a", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk])
    first = launch(first, django_capture_on_commit_callbacks)
    Candidate.objects.filter(campaign=first).update(
        status="done", storage_key="candidates/aa/x.png", content_sha256="a" * 64
    )
    Campaign.objects.filter(pk=first.pk).update(status="completed", finished_at=timezone.now())
    second = campaign_create(name="b", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk],
                             seeds_per_prompt=2)  # fmt: skip
    second = launch(second, django_capture_on_commit_callbacks)
    assert (second.total_items, second.reused_items) == (2, 2)
    assert Candidate.objects.count() == 4
    assert campaign_candidates_select(campaign=second).count() == 4
    assert Candidate.objects.filter(campaign=first).count() == 2


def test_a_later_campaign_takes_over_keys_an_earlier_one_left_failed(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=1)
    first = launch(
        campaign_create(name="a", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]),
        django_capture_on_commit_callbacks,
    )
    Candidate.objects.filter(campaign=first).update(status="failed", error="boom", attempts=3)
    Campaign.objects.filter(pk=first.pk).update(status="failed", finished_at=timezone.now())
    second = launch(
        campaign_create(name="b", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]),
        django_capture_on_commit_callbacks,
    )
    assert (second.total_items, second.reused_items) == (2, 0)
    assert (
        list(Candidate.objects.values_list("campaign_id", "status", "error", "attempts"))
        == [(second.pk, "pending", "", 0)] * 2
    )


def test_cancel_drops_queued_items_and_lets_the_batch_being_rendered_finish(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    # given a running campaign one of whose items is leased by a worker
    prompt_set = prompt_set_make(originals=2)
    campaign = launch(
        campaign_create(name="c", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]),
        django_capture_on_commit_callbacks,
    )
    leased = Candidate.objects.filter(campaign=campaign).first()
    Candidate.objects.filter(pk=leased.pk).update(
        lease_token="t", leased_until=timezone.now() + timedelta(minutes=1)
    )

    # when it is cancelled
    assert campaign_cancel(campaign_id=campaign.pk) == 3

    # then the others are cancelled, the leased one still pending for its worker to finish
    statuses = dict(Candidate.objects.values_list("pk", "status"))
    assert statuses.pop(leased.pk) == "pending"
    assert set(statuses.values()) == {"cancelled"}
    campaign.refresh_from_db()
    assert campaign.status == "cancelled" and campaign.finished_at is not None
    with pytest.raises(Conflict):
        campaign_cancel(campaign_id=campaign.pk)


def test_retry_queues_failed_items_again_and_the_campaign_runs_again(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=1)
    campaign = launch(
        campaign_create(name="c", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]),
        django_capture_on_commit_callbacks,
    )
    queue_purge(own_queue)
    failed = Candidate.objects.filter(campaign=campaign).first()
    Candidate.objects.filter(pk=failed.pk).update(status="failed", error="boom", attempts=3)
    Candidate.objects.exclude(pk=failed.pk).update(
        status="done", storage_key="k", content_sha256="s"
    )
    Campaign.objects.filter(pk=campaign.pk).update(status="completed", finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        assert campaign_retry_failed(campaign_id=campaign.pk) == 1

    failed.refresh_from_db()
    campaign.refresh_from_db()
    assert (failed.status, failed.error, failed.attempts) == ("pending", "", 0)
    assert (campaign.status, campaign.finished_at) == ("running", None)
    assert queued(own_queue) == [[procedural.pk, [failed.pk]]]


def test_progress_counts_items_and_measures_the_rate_over_the_last_minutes(
    procedural, own_queue, django_capture_on_commit_callbacks
):
    prompt_set = prompt_set_make(originals=5)
    campaign = launch(
        campaign_create(name="c", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]),
        django_capture_on_commit_callbacks,
    )
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(started_at=now - timedelta(minutes=20))
    ids = list(Candidate.objects.filter(campaign=campaign).values_list("pk", flat=True))
    # 6 made in the last 5 minutes, 1 long ago, 1 failed, 2 pending
    Candidate.objects.filter(pk__in=ids[:6]).update(
        status="done", storage_key="k", content_sha256="s", finished_at=now - timedelta(minutes=1)
    )
    Candidate.objects.filter(pk=ids[6]).update(
        status="done", storage_key="k", content_sha256="s", finished_at=now - timedelta(minutes=15)
    )
    Candidate.objects.filter(pk=ids[7]).update(status="failed", error="boom")
    campaign.refresh_from_db()

    progress = campaign_progress(campaign=campaign, now=now)

    assert (progress.total, progress.done, progress.failed, progress.pending) == (10, 7, 1, 2)
    assert progress.images_per_second == pytest.approx(6 / 300)
    assert progress.eta_seconds == pytest.approx(2 / (6 / 300))


def test_ensure_launched_makes_the_named_campaign_once(
    procedural, django_capture_on_commit_callbacks
):
    from generation_workers.services.campaigns import campaign_ensure_launched

    prompt_set = prompt_set_make(originals=1)
    with django_capture_on_commit_callbacks(execute=True):
        first = campaign_ensure_launched(
            name="demo", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]
        )
        second = campaign_ensure_launched(
            name="demo", prompt_set_id=prompt_set.pk, config_ids=[procedural.pk]
        )
    assert first.pk == second.pk
    assert (second.status, second.total_items) == ("running", 2)
    assert Candidate.objects.count() == 2
