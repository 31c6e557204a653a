"""Batches in the worker's code path (in process, procedural backend): render, store, record,
skip what is done or held, fail clearly, requeue what a dead worker held."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.metrics import counters_registry
from generation_workers.backends.base import (
    OutOfMemory,
    RenderedItem,
    RenderItem,
    render_splitting_on_oom,
)
from generation_workers.models import Campaign, Candidate, GeneratorConfig
from generation_workers.services.batches import (
    TransientFailure,
    batch_render,
    candidates_fail_unfinished,
)
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_create
from generation_workers.services.leases import (
    MAX_ATTEMPTS,
    candidate_leases_sweep,
    candidates_claim,
)
from tests.conftest import s3_client
from tests.generation.conftest import prompt_set_make, queue_purge
from tests.generation.test_campaigns import queued

pytestmark = pytest.mark.django_db


def storage_unreachable(settings) -> None:
    """The S3 storage pointed at a port nobody listens on, failing fast (one attempt)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {
                **settings.STORAGES["default"]["OPTIONS"],
                "endpoint_url": "http://127.0.0.1:9",
                "client_config": __import__("botocore.config").config.Config(
                    retries={"max_attempts": 1}, connect_timeout=1
                ),
            },
        },
    }


def running(configs, *, originals=1, seeds=1, perturbed=True) -> Campaign:
    """A launched campaign; its batches are taken off the queue (this test renders them)."""
    prompt_set = prompt_set_make(originals=originals, perturbed=perturbed)
    campaign = campaign_create(
        name=f"c-{prompt_set.pk}", prompt_set_id=prompt_set.pk,
        config_ids=[c.pk for c in configs], seeds_per_prompt=seeds,
    )  # fmt: skip
    campaign_launch(campaign_id=campaign.pk)  # on_commit does not run here: nothing published
    return campaign


def procedural(name="proc", **fields) -> GeneratorConfig:
    return generator_config_create(
        name=name, backend="procedural", width=96, height=96, queue=f"q-{name}", **fields
    )


def ids_of(campaign, **filters) -> list[int]:
    return list(Candidate.objects.filter(campaign=campaign, **filters).values_list("pk", flat=True))


def images_counted(config: str) -> tuple[float, float]:
    """spatialprefs_images_total{config} (done, failed), as /metrics serves it."""
    registry = counters_registry()
    return tuple(
        registry.get_sample_value("spatialprefs_images_total", {"config": config, "outcome": o})
        or 0.0
        for o in ("done", "failed")
    )


def test_a_batch_is_rendered_stored_by_content_hash_and_recorded_with_its_truth(
    s3_settings, moto_endpoint
):
    # given a campaign of one prompt and its flipped copy
    config = procedural()
    campaign = running([config])

    # when its batch is rendered
    report = batch_render(config_id=config.pk, candidate_ids=ids_of(campaign), worker="w1")

    # then both are done, stored under their hash, with the layout and relations that hold
    assert (report.claimed, report.done, report.failed, report.skipped) == (2, 2, 0, 0)
    candidates = list(Candidate.objects.filter(campaign=campaign).select_related("prompt"))
    for candidate in candidates:
        sha = candidate.content_sha256
        assert candidate.status == "done"
        assert candidate.storage_key == f"candidates/{sha[:2]}/{sha}.png"
        assert (candidate.width, candidate.height, candidate.attempts) == (96, 96, 1)
        assert (candidate.lease_token, candidate.leased_until) == ("", None)
        params = candidate.generation_params
        assert params["backend"] == "procedural"
        assert params["relations_hold"] == [True]
        assert params["violated"] is None
        assert set(params["layout"]) == {"o1", "o2"}
        assert params["worker"] == "w1"
        assert len(params["renderer_revision"]) == 64
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(c.storage_key for c in candidates)
    campaign.refresh_from_db()
    assert campaign.status == "completed"


def test_a_violating_config_draws_the_chosen_relation_broken(s3_settings):
    config = procedural(name="broken", extra_args={"violate": 0})
    campaign = running([config], perturbed=False)
    batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))
    params = Candidate.objects.get(campaign=campaign).generation_params
    assert (params["violated"], params["relations_hold"]) == (0, [False])


def test_an_item_the_renderer_cannot_draw_fails_with_the_reason_and_the_rest_is_made(
    s3_settings,
):
    config = procedural()
    campaign = running([config], originals=2, perturbed=False)
    bad = Candidate.objects.filter(campaign=campaign).select_related("prompt").first()
    structure = bad.prompt.structure
    structure["relations"][0]["objects"] = ["o1"]
    type(bad.prompt).objects.filter(pk=bad.prompt_id).update(structure=structure)

    report = batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))

    assert (report.done, report.failed) == (1, 1)
    bad.refresh_from_db()
    assert bad.status == "failed"
    assert bad.error == (
        "the procedural renderer cannot draw this prompt: relations[0]: an object cannot be "
        "related to itself"
    )
    campaign.refresh_from_db()
    assert campaign.status == "completed"


def test_items_done_or_held_by_another_worker_are_skipped(s3_settings):
    config = procedural()
    campaign = running([config], originals=2)
    done, held, *free = ids_of(campaign)
    Candidate.objects.filter(pk=done).update(status="done", storage_key="k", content_sha256="s")
    Candidate.objects.filter(pk=held).update(
        lease_token="other", leased_until=timezone.now() + timedelta(minutes=1), attempts=1
    )

    report = batch_render(config_id=config.pk, candidate_ids=[done, held, *free])

    assert (report.claimed, report.skipped, report.done) == (2, 2, 2)
    assert Candidate.objects.get(pk=done).storage_key == "k"
    held_row = Candidate.objects.filter(pk=held).values_list("status", "lease_token", "attempts")
    assert held_row.get() == ("pending", "other", 1)
    # and a batch of a cancelled campaign renders nothing
    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")
    assert batch_render(config_id=config.pk, candidate_ids=[held]).claimed == 0


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_worker_has_locked_and_never_takes_a_leased_item():
    campaign = running([procedural()], originals=2)
    queue_purge("q-proc")  # published on the launch's commit: this test claims by itself
    locked, *rest = ids_of(campaign)
    holding, release = threading.Event(), threading.Event()

    def other_worker_claiming() -> None:  # holds the row lock of `locked` until released
        try:
            with transaction.atomic():
                list(Candidate.objects.select_for_update().filter(pk=locked))
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker_claiming)
    thread.start()
    assert holding.wait(timeout=30)
    try:
        first = candidates_claim(candidate_ids=[locked, *rest], token="first")
    finally:
        release.set()
        thread.join(timeout=30)
    second = candidates_claim(candidate_ids=[locked, *rest], token="second")

    assert [item.candidate_id for item in first] == rest
    assert [item.candidate_id for item in second] == [locked]
    tokens = dict(Candidate.objects.filter(campaign=campaign).values_list("pk", "lease_token"))
    assert tokens == {locked: "second", **{pk: "first" for pk in rest}}
    assert set(Candidate.objects.filter(campaign=campaign).values_list("attempts", flat=True)) == {
        1
    }


def test_identical_images_share_one_key_and_one_stored_object(s3_settings, moto_endpoint):
    twin_a, twin_b = procedural(name="twin-a"), procedural(name="twin-b")
    campaign = running([twin_a, twin_b], perturbed=False)
    for config in (twin_a, twin_b):
        batch_render(config_id=config.pk, candidate_ids=ids_of(campaign, config=config))
    keys = list(Candidate.objects.filter(campaign=campaign).values_list("storage_key", flat=True))
    assert len(keys) == 2 and keys[0] == keys[1]
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert [o["Key"] for o in listed["Contents"]] == [keys[0]]


def test_an_unreachable_storage_releases_the_items_for_a_retry(s3_settings, settings):
    storage_unreachable(settings)
    config = procedural()
    campaign = running([config], perturbed=False)

    with pytest.raises(TransientFailure) as failure:
        batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))

    assert failure.value.args[0].startswith("EndpointConnectionError: ")
    assert Candidate.objects.filter(campaign=campaign).values_list(
        "status", "lease_token", "leased_until", "attempts"
    ).get() == ("pending", "", None, 1)


def test_a_storage_that_refuses_the_write_fails_the_items_with_the_reason(s3_settings, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "no-such-bucket"},
        },
    }
    config = procedural()
    campaign = running([config], perturbed=False)

    report = batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))

    assert report.failed == 1
    candidate = Candidate.objects.get(campaign=campaign)
    assert candidate.status == "failed"
    assert candidate.error == (
        "could not store the image: NoSuchBucket: An error occurred (NoSuchBucket) when calling "
        "the PutObject operation: The specified bucket does not exist"
    )


def test_an_item_planned_before_its_config_changed_fails_instead_of_lying(s3_settings):
    config = procedural()
    campaign = running([config], perturbed=False)
    GeneratorConfig.objects.filter(pk=config.pk).update(width=128)
    batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))
    assert Candidate.objects.get(campaign=campaign).error == (
        "the config's generation settings changed after this item was planned; launch a new "
        "campaign"
    )


def test_the_sweep_requeues_items_of_dead_workers_and_gives_up_after_the_last_attempt(
    django_capture_on_commit_callbacks,
):
    # given items whose leases ran out: one claimed once, one claimed MAX_ATTEMPTS times,
    # one live lease, and one of a cancelled campaign
    config = procedural()
    queue_purge("q-proc")
    campaign = running([config], originals=2)
    requeue, give_up, live, _ = ids_of(campaign)
    past = timezone.now() - timedelta(seconds=1)
    Candidate.objects.filter(pk=requeue).update(lease_token="a", leased_until=past, attempts=1)
    Candidate.objects.filter(pk=give_up).update(
        lease_token="b", leased_until=past, attempts=MAX_ATTEMPTS
    )
    Candidate.objects.filter(pk=live).update(
        lease_token="c", leased_until=timezone.now() + timedelta(minutes=1)
    )
    other = running([procedural(name="other")], perturbed=False)
    gone = ids_of(other)[0]
    Candidate.objects.filter(pk=gone).update(lease_token="d", leased_until=past, attempts=1)
    Campaign.objects.filter(pk=other.pk).update(status="cancelled")

    counted = images_counted("proc")

    # when the sweep runs
    with django_capture_on_commit_callbacks(execute=True):
        report = candidate_leases_sweep()

    # then the first is queued again, the second failed, the live one untouched
    assert (report.requeued, report.failed, report.cancelled) == (1, 1, 1)
    rows = dict(Candidate.objects.values_list("pk", "status"))
    assert (rows[requeue], rows[give_up], rows[live], rows[gone]) == (
        "pending",
        "failed",
        "pending",
        "cancelled",
    )
    assert Candidate.objects.get(pk=give_up).error.startswith(
        f"gave up after {MAX_ATTEMPTS} attempts"
    )
    assert Candidate.objects.get(pk=live).lease_token == "c"
    assert queued("q-proc") == [[config.pk, [requeue]]]
    # and the item it gave up on counts as a failed image of its config, like a worker's failure
    assert images_counted("proc") == (counted[0], counted[1] + 1)
    assert images_counted("other") == (0, 0)


def test_the_last_retry_fails_the_items_nobody_holds():
    config = procedural()
    campaign = running([config], perturbed=False)
    counted = images_counted("proc")
    assert candidates_fail_unfinished(candidate_ids=ids_of(campaign), message="S3 down") == 1
    assert images_counted("proc") == (counted[0], counted[1] + 1)
    assert Candidate.objects.get(campaign=campaign).error == "S3 down"
    campaign.refresh_from_db()
    assert campaign.status == "failed"


def items(n):
    return [RenderItem(candidate_id=i, text="t", structure={}, seed=i) for i in range(n)]


def test_a_batch_that_runs_out_of_memory_is_split_until_it_fits():
    sizes = []

    def render(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise OutOfMemory("CUDA out of memory")
        return [RenderedItem(candidate_id=i.candidate_id, image=None, error="ok") for i in batch]

    results = render_splitting_on_oom(items(5), render)

    assert [r.candidate_id for r in results] == [0, 1, 2, 3, 4]
    assert sizes == [5, 2, 3, 1, 2]


def test_an_image_too_large_for_memory_alone_fails_with_advice():
    def render(batch):
        raise OutOfMemory("CUDA out of memory. Tried to allocate 20.00 GiB")

    results = render_splitting_on_oom(items(2), render)

    assert [r.error for r in results] == [
        "out of memory even for a single image (CUDA out of memory. Tried to allocate 20.00 "
        "GiB); lower the image size or the steps, or use a larger GPU"
    ] * 2


def test_the_same_bytes_stored_twice_in_local_files_keep_one_file(tmp_path):
    from generation_workers.services.images import candidate_image_store

    first = candidate_image_store(data=b"same image bytes", fmt="png")
    second = candidate_image_store(data=b"same image bytes", fmt="png")

    assert first == second
    key, sha = first
    assert key == f"candidates/{sha[:2]}/{sha}.png"
    stored = sorted(p.name for p in (tmp_path / "media" / "candidates" / sha[:2]).iterdir())
    assert stored == [f"{sha}.png"]
