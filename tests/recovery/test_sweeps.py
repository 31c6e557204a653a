"""The recovery sweeps, one service per kind of work, on an injected clock: what is published
again when its broker message was lost, when, once per period, and what is left alone.

Each test starts from the state a lost message leaves (the row saved, the message gone from
Redis) and reads the broker's queues to see what was published."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import PairBuild
from annotation.services.pairs import pair_build_run, pair_build_start, pair_builds_recover
from config.celery import Queue, app, queue_waiting
from generation_workers.models import Campaign, Candidate, PromptSet
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_create
from generation_workers.services.recovery import campaigns_recover, prompt_sets_recover
from generation_workers.tasks import prompt_set_build_task
from tests.datasets.factories import judge_bulk, version_frozen, world_build
from tests.factories import CampaignFactory, CandidateFactory, GeneratorConfigFactory, PromptFactory
from tests.generation.conftest import prompt_set_make
from tests.labeling.factories import queue_for_annotators
from tests.recovery.conftest import messages, queue_purge
from training_bridge.datasets.services.datasets import (
    dataset_version_create,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import dataset_export_request, dataset_export_run
from training_bridge.datasets.services.freezing import dataset_version_freeze
from training_bridge.datasets.services.recovery import (
    dataset_exports_recover,
    dataset_versions_recover,
)
from training_bridge.datasets.tasks import dataset_export_task
from training_bridge.models import DatasetExport, DatasetVersion, TrainingRun
from training_bridge.training.services.recovery import training_runs_recover

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("broker_emptied")]

STALE = 600  # seconds: RECOVERY_STALE_SECONDS in these tests
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _stale_after(settings) -> None:
    settings.RECOVERY_STALE_SECONDS = STALE


def seconds(moment, n: float):
    return moment + timedelta(seconds=n)


def test_beat_sends_each_apps_sweep_to_the_cpu_queue_every_period():
    names = ("generation.recover", "annotation.recover", "training_bridge.recover")
    app.loader.import_default_modules()  # what a worker and beat do at start
    assert app.conf.beat_schedule == {
        name: {"task": name, "schedule": 60.0, "options": {"expires": 60.0}} for name in names
    }
    for name in names:
        task = app.tasks[name]
        assert (task.route_queue, task.soft_time_limit, task.time_limit) == (Queue.CPU, 120, 150)
    procfile = (REPO / "deploy" / "Procfile").read_text()
    assert "\nbeat: celery -A config beat " in procfile
    for demo in ("deploy/Procfile.demo", "deploy/dev/demo.sh"):
        assert " -B --schedule " in (REPO / demo).read_text()


def launched(own_queue: str, django_capture_on_commit_callbacks) -> Campaign:
    """A running campaign of 4 items in batches of 2 on `own_queue`, its batches published."""
    config = generator_config_create(
        name="proc", backend="procedural", width=64, height=64, batch_size=2, queue=own_queue
    )
    campaign = campaign_create(
        name="c", prompt_set_id=prompt_set_make(originals=2).pk, config_ids=[config.pk]
    )
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaign_launch(campaign_id=campaign.pk)
    assert queue_waiting(own_queue) == 2
    return campaign


def test_a_campaign_whose_batches_were_lost_is_published_again_once_per_period(
    own_queue, django_capture_on_commit_callbacks
):
    # given a running campaign whose batches the broker lost
    campaign = launched(own_queue, django_capture_on_commit_callbacks)
    queue_purge(own_queue)
    ids = sorted(Candidate.objects.filter(campaign=campaign).values_list("pk", flat=True))
    config_id = Candidate.objects.filter(campaign=campaign).values_list("config", flat=True)[0]

    # when the sweep runs before and after the stale period since its launch
    assert campaigns_recover(now=seconds(campaign.dispatched_at, STALE - 1)) == 0
    assert messages(own_queue) == []
    later = seconds(campaign.dispatched_at, STALE + 1)
    assert campaigns_recover(now=later) == 4

    # then its pending items are published again, once for the period
    assert messages(own_queue) == [
        ("generation.render_batch", [config_id, ids[:2]], {}),
        ("generation.render_batch", [config_id, ids[2:]], {}),
    ]
    assert Campaign.objects.get(pk=campaign.pk).dispatched_at == later
    assert campaigns_recover(now=seconds(later, STALE - 1)) == 0
    assert messages(own_queue) == []


def test_a_campaign_that_moves_holds_a_lease_or_waits_behind_batches_is_left_alone(
    own_queue, django_capture_on_commit_callbacks
):
    campaign = launched(own_queue, django_capture_on_commit_callbacks)
    long_after = seconds(campaign.dispatched_at, 10 * STALE)
    first, second, *_ = Candidate.objects.filter(campaign=campaign).order_by("pk")

    # its batches still wait in its queue (behind other campaigns' batches, say)
    assert campaigns_recover(now=long_after) == 0
    assert queue_waiting(own_queue) == 2

    # the queue is empty but a worker holds a live lease on an item
    queue_purge(own_queue)
    Candidate.objects.filter(pk=first.pk).update(
        lease_token="w", leased_until=seconds(long_after, 60)
    )
    assert campaigns_recover(now=long_after) == 0

    # the lease is gone but an item finished within the period
    Candidate.objects.filter(pk=first.pk).update(
        lease_token="", leased_until=None, status="done", storage_key="k", content_sha256="s",
        finished_at=seconds(long_after, -STALE + 1),
    )  # fmt: skip
    assert campaigns_recover(now=long_after) == 0
    assert messages(own_queue) == []

    # and a campaign no longer running is never published
    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")
    assert campaigns_recover(now=seconds(long_after, 10 * STALE)) == 0
    assert Candidate.objects.get(pk=second.pk).status == "pending"
    assert messages(own_queue) == []


SMALL_SPEC = {
    "size": 12,
    "seed": 3,
    "vocabulary": "coco",
    "templates": ["geneval"],
    "relations": ["left_of", "above"],
}


def test_a_prompt_set_left_building_is_published_again_and_built_once(
    django_capture_on_commit_callbacks,
):
    # given a large set's build whose message was lost
    prompt_set = PromptSet.objects.create(
        name="lost", source="template", spec=SMALL_SPEC, status="building"
    )

    # when the sweep runs before and after the stale period
    with django_capture_on_commit_callbacks(execute=True):
        assert prompt_sets_recover(now=seconds(prompt_set.created_at, STALE - 1)) == []
        later = seconds(prompt_set.created_at, STALE + 1)
        assert prompt_sets_recover(now=later) == [prompt_set.pk]
        assert prompt_sets_recover(now=seconds(later, 1)) == []

    # then its build is published once, and runs
    assert messages(Queue.CPU) == [("generation.prompt_set_build", [prompt_set.pk], {})]
    prompt_set_build_task.apply(args=[prompt_set.pk])
    prompt_set.refresh_from_db()
    assert (prompt_set.status, prompt_set.prompt_count) == ("ready", 24)  # with perturbations
    with django_capture_on_commit_callbacks(execute=True):
        assert prompt_sets_recover(now=seconds(later, 10 * STALE)) == []


@pytest.fixture
def frozen() -> DatasetVersion:
    world = world_build(groups=1)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    return version_frozen(dataset_name="lost", filter_spec={"queues": [world.queue.name]})


def export_message(export: DatasetExport) -> tuple:
    return ("training_bridge.dataset_export.run", [], {"export_id": export.pk})


def test_an_export_whose_message_was_lost_is_published_again_and_so_is_a_repeated_request(
    frozen, django_capture_on_commit_callbacks
):
    # given an export asked for, whose message the broker lost
    with django_capture_on_commit_callbacks(execute=True):
        export = dataset_export_request(version_id=frozen.pk, format="jsonl")
    assert messages(Queue.CPU) == [export_message(export)]
    asked = export.heartbeat_at

    # when the sweep runs before and after the stale period
    with django_capture_on_commit_callbacks(execute=True):
        assert dataset_exports_recover(now=seconds(asked, STALE - 1)) == []
        later = seconds(asked, STALE + 1)
        assert dataset_exports_recover(now=later) == [export.pk]
        assert dataset_exports_recover(now=seconds(later, STALE - 1)) == []

    # then it is published once for the period, still queued
    assert messages(Queue.CPU) == [export_message(export)]
    export.refresh_from_db()
    assert (export.status, export.heartbeat_at) == ("queued", later)

    # and asking for it again publishes it again too (it used to do nothing)
    with django_capture_on_commit_callbacks(execute=True):
        again = dataset_export_request(version_id=frozen.pk, format="jsonl")
    assert again.pk == export.pk
    assert messages(Queue.CPU) == [export_message(export)]
    dataset_export_task.apply(kwargs={"export_id": export.pk})
    export.refresh_from_db()
    assert (export.status, export.run_token) == ("done", None)
    assert dataset_exports_recover(now=seconds(later, 10 * STALE)) == []


def test_a_second_delivery_leaves_a_live_export_alone_and_takes_over_a_stale_one(frozen):
    export = dataset_export_request(version_id=frozen.pk, format="jsonl", enqueue=False)
    owner = uuid.uuid4()
    now = timezone.now()
    DatasetExport.objects.filter(pk=export.pk).update(
        status="running", run_token=owner, heartbeat_at=now, records_done=1
    )

    # a second delivery while its owner beats: nothing happens
    found = dataset_export_run(export_id=export.pk)
    assert (found.status, found.run_token, found.heartbeat_at, found.records_done) == (
        "running", owner, now, 1,
    )  # fmt: skip

    # its owner stopped beating a period ago (its worker was killed): the delivery takes over
    DatasetExport.objects.filter(pk=export.pk).update(heartbeat_at=seconds(now, -STALE - 1))
    finished = dataset_export_run(export_id=export.pk)
    assert (finished.status, finished.run_token, finished.records_done) == ("done", None, 4)


def test_a_running_export_without_progress_goes_back_to_queued_and_is_published(
    frozen, django_capture_on_commit_callbacks
):
    export = dataset_export_request(version_id=frozen.pk, format="parquet", enqueue=False)
    beat = timezone.now()
    DatasetExport.objects.filter(pk=export.pk).update(
        status="running", run_token=uuid.uuid4(), heartbeat_at=beat
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert dataset_exports_recover(now=seconds(beat, STALE - 1)) == []
        assert dataset_exports_recover(now=seconds(beat, STALE + 1)) == [export.pk]
    export.refresh_from_db()
    assert (export.status, export.run_token) == ("queued", None)
    assert messages(Queue.CPU) == [export_message(export)]


def test_a_freeze_whose_message_was_lost_is_published_again_and_a_live_owner_is_left_alone(
    frozen, django_capture_on_commit_callbacks
):
    # given a freeze asked for (a second version of the same selection), its message lost
    draft = dataset_version_create(
        dataset_id=frozen.dataset_id, filter_spec=frozen.filter_spec, split_spec=frozen.split_spec
    )
    with django_capture_on_commit_callbacks(execute=True):
        asked = dataset_version_freeze_request(version_id=draft.pk).freeze_heartbeat_at
    queue_purge(Queue.CPU)

    # when the sweep runs before and after the stale period
    with django_capture_on_commit_callbacks(execute=True):
        assert dataset_versions_recover(now=seconds(asked, STALE - 1)) == []
        assert dataset_versions_recover(now=seconds(asked, STALE + 1)) == [draft.pk]
    assert messages(Queue.CPU) == [
        ("training_bridge.dataset_version.freeze", [], {"version_id": draft.pk})
    ]

    # then a delivery while a live run owns it does nothing, and one after it stopped takes over
    owner = uuid.uuid4()
    DatasetVersion.objects.filter(pk=draft.pk).update(
        freeze_token=owner, freeze_heartbeat_at=timezone.now()
    )
    assert dataset_version_freeze(version_id=draft.pk).freeze_token == owner
    assert DatasetVersion.objects.get(pk=draft.pk).status == "freezing"
    DatasetVersion.objects.filter(pk=draft.pk).update(
        freeze_heartbeat_at=seconds(timezone.now(), -STALE - 1)
    )
    version = dataset_version_freeze(version_id=draft.pk)
    assert (version.status, version.content_hash) == ("frozen", frozen.content_hash)


def test_a_pair_build_whose_message_was_lost_is_published_again_and_a_live_owner_is_left_alone(
    django_capture_on_commit_callbacks,
):
    # given a build asked for, whose message the broker lost
    campaign = CampaignFactory()
    config = GeneratorConfigFactory()
    prompt = PromptFactory(prompt_set=campaign.prompt_set)
    CandidateFactory.create_batch(3, campaign=campaign, prompt=prompt, config=config)
    queue = queue_for_annotators()
    with django_capture_on_commit_callbacks(execute=True):
        build = pair_build_start(
            queue_id=queue.pk, campaign_id=campaign.pk, kind="same_prompt",
            options={"make_thumbnails": False},
        )  # fmt: skip
    queue_purge(Queue.CPU)

    # when the sweep runs before and after the stale period
    with django_capture_on_commit_callbacks(execute=True):
        assert pair_builds_recover(now=seconds(build.heartbeat_at, STALE - 1)) == []
        assert pair_builds_recover(now=seconds(build.heartbeat_at, STALE + 1)) == [build.pk]
    assert messages(Queue.CPU) == [("annotation.pairs.build", [], {"pair_build_id": build.pk})]

    # then a delivery while a live run owns it does nothing, and one after it stopped takes over
    owner = uuid.uuid4()
    PairBuild.objects.filter(pk=build.pk).update(
        status="running", run_token=owner, heartbeat_at=timezone.now()
    )
    held = pair_build_run(pair_build_id=build.pk)
    assert (held.status, held.run_token, held.pairs_created) == ("running", owner, 0)
    PairBuild.objects.filter(pk=build.pk).update(heartbeat_at=seconds(timezone.now(), -STALE - 1))
    done = pair_build_run(pair_build_id=build.pk)
    assert (done.status, done.run_token, done.pairs_created) == ("done", None, 3)


def test_a_queued_training_run_is_published_again_only_while_its_queue_is_empty(frozen):
    # given a run saved queued whose message the broker lost
    run = TrainingRun.objects.create(dataset_version=frozen, config={}, config_hash="c" * 64)
    message = ("training_bridge.training_run.execute", [], {"run_id": run.pk})

    # when the sweep runs before and after the stale period since it was made
    assert training_runs_recover(now=seconds(run.created_at, STALE - 1)) == []
    later = seconds(run.created_at, STALE + 1)
    assert training_runs_recover(now=later) == [run.pk]

    # then it is published, and not again while that message waits (a run takes hours: the
    # queue may hold it behind other runs)
    assert queue_waiting(Queue.TRAINING) == 1
    assert training_runs_recover(now=seconds(later, 10 * STALE)) == []
    assert messages(Queue.TRAINING) == [message]
    # a run that started is never published again (a crashed one is failed by its sweep)
    TrainingRun.objects.filter(pk=run.pk).update(status="running")
    assert training_runs_recover(now=seconds(later, 10 * STALE)) == []
    assert messages(Queue.TRAINING) == []
