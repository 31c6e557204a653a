"""Training services: config checks, idempotent start, cancel, the stale-heartbeat sweep, the
reward model of a succeeded run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from tests.factories import DatasetVersionFactory, TrainingRunFactory
from tests.training.worlds import procedural_version
from training_bridge.models import DatasetExport, RewardModel, TrainingRun
from training_bridge.reward_models.services.registry import reward_model_register_run
from training_bridge.training.services.launcher_definitions import (
    training_launcher_clean,
    training_launcher_save,
)
from training_bridge.training.services.training import (
    training_config_clean,
    training_run_cancel,
    training_run_start,
    training_runs_sweep,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    return procedural_version(groups=6, seeds=1, size=32)


def test_a_frozen_version_of_procedural_scenes_has_every_split_and_a_parquet_export(version):
    splits = set(version.records.values_list("split", flat=True))
    export = DatasetExport.objects.get(version=version, format="parquet", include_images=True)

    assert splits == {"train", "val", "test"}
    assert version.record_count == 6
    assert export.status == "done"
    shards = [a["name"] for a in export.artifacts if a["name"].endswith("0.parquet")]
    assert {name.split("-")[0] for name in shards} == {"train", "val", "test"}


def test_starting_the_same_config_twice_returns_the_existing_run(version):
    first = training_run_start(version_id=version.pk, config={"epochs": 2}, enqueue=False)
    again = training_run_start(
        version_id=version.pk, config={"epochs": 2, "head": "scalar"}, enqueue=False
    )

    assert (first.created, again.created) == (True, False)
    assert again.run.pk == first.run.pk
    assert TrainingRun.objects.count() == 1
    assert first.run.config["epochs"] == 2 and first.run.config["lr"] == 0.001
    assert (first.run.status, first.run.attempt, first.run.launcher) == ("queued", 1, "builtin")


def test_forcing_a_start_makes_a_new_attempt_of_the_same_config(version):
    first = training_run_start(version_id=version.pk, config={}, enqueue=False).run
    second = training_run_start(version_id=version.pk, config={}, force=True, enqueue=False).run

    assert (second.attempt, second.config_hash) == (2, first.config_hash)
    assert training_run_start(version_id=version.pk, config={}, enqueue=False).run == second


def test_a_different_config_is_a_different_run(version):
    a = training_run_start(version_id=version.pk, config={"seed": 1}, enqueue=False).run
    b = training_run_start(version_id=version.pk, config={"seed": 2}, enqueue=False).run

    assert a.pk != b.pk and a.config_hash != b.config_hash
    assert (a.attempt, b.attempt) == (1, 1)


def test_a_start_asks_for_the_versions_export_in_the_configs_format(version):
    training_run_start(
        version_id=version.pk, config={"dataset_format": "webdataset"}, enqueue=False
    )

    export = DatasetExport.objects.get(version=version, format="webdataset", include_images=True)
    assert export.status == "queued"


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"backbone": "resnet"}, "config.backbone", "unknown value 'resnet'"),
        ({"backbone": "clip", "model_path": "/no/such/folder"}, "config.model_path",
         "no such folder: /no/such/folder"),
        ({"launcher": "slurm"}, "config.launcher", "unknown launcher 'slurm'"),
        ({"launcher": "external"}, "config.launcher", "unknown launcher 'external'"),
        ({"launcher": "external", "command": "train {dataset_dir}"}, "config.command",
         "a run config carries no command: ask an admin to define a launcher"),
        ({"command": "python train.py"}, "config.command", "a run config carries no command"),
        ({"launcher": 3}, "config.launcher", "must be a launcher's name"),
        ({"model_name": "a b"}, "config.model_name", "letters, digits"),
        ({"batch_size": -1}, "config.batch_size", "must be an integer"),
        ([], "config", "must be a JSON object"),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_naming_the_field_and_nothing_is_made(
    version, config, field, message
):
    with pytest.raises(ValidationFailed) as caught:
        training_run_start(version_id=version.pk, config=config, enqueue=False)

    assert caught.value.field == field
    assert message in caught.value.detail
    assert TrainingRun.objects.count() == 0
    assert not DatasetExport.objects.filter(version=version, format="webdataset").exists()


def test_a_version_that_is_not_frozen_is_refused():
    draft = DatasetVersionFactory()

    with pytest.raises(ValidationFailed) as caught:
        training_run_start(version_id=draft.pk, config={}, enqueue=False)

    assert caught.value.field == "dataset_version"
    assert "is draft: only a frozen version can be trained on" in caught.value.detail
    assert TrainingRun.objects.count() == 0


def test_an_unknown_version_is_a_not_found():
    with pytest.raises(NotFound) as caught:
        training_run_start(version_id=987654, config={}, enqueue=False)
    assert caught.value.field == "dataset_version"


def test_a_launcher_definitions_config_keeps_its_options_and_takes_no_trainer_keys():
    definition = training_launcher_clean(
        name="team-vlm", argv=["/opt/rm/train.sh", "--config", "{config_file}"]
    )
    training_launcher_save(definition=definition)

    clean = training_config_clean(
        config={
            "launcher": "team-vlm",
            "dataset_format": "webdataset",
            "options": {"model_dir": "models/qwen-vl", "rank": 16, "layers": [1, 2]},
        }
    )

    assert clean == {
        "launcher": "team-vlm",
        "model_name": "spatial-rm",
        "dataset_format": "webdataset",
        "options": {"layers": [1, 2], "model_dir": "models/qwen-vl", "rank": 16},
    }


def test_cancelling_a_queued_run_cancels_it_at_once():
    run = TrainingRunFactory()

    cancelled = training_run_cancel(run_id=run.pk)

    assert (cancelled.status, cancelled.cancel_requested) == ("cancelled", True)
    assert cancelled.finished_at is not None


def test_cancelling_a_running_run_asks_the_worker_to_stop_it():
    run = TrainingRunFactory(status="running", started_at=timezone.now())

    asked = training_run_cancel(run_id=run.pk)
    again = training_run_cancel(run_id=run.pk)

    assert (asked.status, asked.cancel_requested) == ("running", True)
    assert (again.status, again.cancel_requested) == ("running", True)


def test_cancelling_a_finished_run_is_a_conflict_and_changes_nothing():
    run = TrainingRunFactory(status="succeeded", finished_at=timezone.now())

    with pytest.raises(Conflict, match="is succeeded: nothing to cancel"):
        training_run_cancel(run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("succeeded", False)


def test_the_sweep_fails_runs_whose_heartbeat_is_stale_and_leaves_fresh_ones():
    now = timezone.now()
    stale = TrainingRunFactory(
        status="running", heartbeat_at=now - timedelta(seconds=300), worker="w1:42"
    )
    fresh = TrainingRunFactory(status="running", heartbeat_at=now - timedelta(seconds=10))
    stale_cancelled = TrainingRunFactory(
        status="running", heartbeat_at=now - timedelta(seconds=300), cancel_requested=True
    )

    assert training_runs_sweep(now=now, stale_after=120) == 2

    stale.refresh_from_db()
    fresh.refresh_from_db()
    stale_cancelled.refresh_from_db()
    assert stale.status == "failed"
    assert stale.error.startswith("the training worker w1:42 stopped sending heartbeats")
    assert stale.finished_at == now
    assert fresh.status == "running"
    assert stale_cancelled.status == "cancelled"
    assert training_runs_sweep(now=now, stale_after=120) == 0


def test_a_succeeded_run_registers_one_candidate_reward_model_numbered_per_name():
    runs = [
        TrainingRunFactory(
            status="succeeded",
            finished_at=timezone.now(),
            config={"model_name": "spatial-rm"},
            summary={"val/accuracy": 0.9},
            artifacts=[
                {"name": "checkpoint/model.safetensors", "key": "k", "size": 1, "sha256": "s"}
            ],  # fmt: skip
        )
        for _ in range(2)
    ]

    first = reward_model_register_run(run_id=runs[0].pk)
    second = reward_model_register_run(run_id=runs[1].pk)

    assert (first.created, second.created) == (True, True)
    first, second = first.model, second.model
    assert (first.name, first.version, first.status) == ("spatial-rm", 1, "candidate")
    assert second.version == 2
    assert first.artifact_key == f"training/runs/{runs[0].pk}/checkpoint"
    assert first.metrics == {"val/accuracy": 0.9}
    assert first.dataset_version_id == runs[0].dataset_version_id
    again = reward_model_register_run(run_id=runs[0].pk)
    assert (again.model, again.created) == (first, False)
    assert RewardModel.objects.count() == 2


def test_a_run_that_did_not_succeed_registers_no_reward_model():
    run = TrainingRunFactory(status="failed", finished_at=timezone.now())

    with pytest.raises(Conflict) as refused:
        reward_model_register_run(run_id=run.pk)
    with pytest.raises(NotFound) as unknown:
        reward_model_register_run(run_id=run.pk + 1000)
    assert (refused.value.field, unknown.value.field) == ("run", "run")
    assert RewardModel.objects.count() == 0
