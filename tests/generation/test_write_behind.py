"""Write-behind: the worker's task hands a rendered batch to the writer thread and returns; the
items stay leased until recorded, and a transient failure there queues the batch again.

The writer thread has its own database connection, so these tests commit (transaction=True).
"""

import threading

import pytest

from generation_workers.models import Candidate
from generation_workers.services import batches
from generation_workers.services.batches import batch_render
from generation_workers.services.write_behind import write_behind_flush
from tests.generation.test_batches import ids_of, procedural, running, storage_unreachable

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_batch_is_recorded_by_the_writer_and_held_until_then(s3_settings, monkeypatch):
    # given a writer that is still busy storing when the task returns
    release = threading.Event()
    store_all = batches._store_all

    def slow_store_all(*args, **kwargs):
        assert release.wait(timeout=30)
        return store_all(*args, **kwargs)

    monkeypatch.setattr(batches, "_store_all", slow_store_all)
    config = procedural()
    campaign = running([config])
    retried: list[str] = []

    # when the task's call renders the batch with write-behind
    report = batch_render(
        config_id=config.pk, candidate_ids=ids_of(campaign), retry_later=retried.append
    )

    # then it returned before anything was recorded, and the items are still held
    assert (report.claimed, report.done, report.failed) == (2, 0, 0)
    rows = Candidate.objects.filter(campaign=campaign).values_list("status", "lease_token")
    assert {status for status, _ in rows} == {"pending"}
    assert all(token for _, token in rows)

    # and once the writer may go on, both are done, released, and the campaign completed
    release.set()
    write_behind_flush(timeout=30)
    assert set(
        Candidate.objects.filter(campaign=campaign).values_list("status", "lease_token")
    ) == {("done", "")}
    campaign.refresh_from_db()
    assert campaign.status == "completed"
    assert retried == []


def test_a_storage_failure_on_the_writer_releases_the_items_and_queues_the_batch_again(
    s3_settings, settings
):
    # given a storage that cannot be reached
    storage_unreachable(settings)
    config = procedural()
    campaign = running([config], perturbed=False)
    retried: list[str] = []

    # when the batch is rendered with write-behind and its write fails
    batch_render(config_id=config.pk, candidate_ids=ids_of(campaign), retry_later=retried.append)
    write_behind_flush(timeout=30)

    # then the retry was asked for with the reason, and the item is free for it
    assert len(retried) == 1 and retried[0].startswith("EndpointConnectionError: ")
    assert Candidate.objects.filter(campaign=campaign).values_list(
        "status", "lease_token", "leased_until", "attempts"
    ).get() == ("pending", "", None, 1)
