"""Launcher definitions stored before the trainer moved to `training_bridge.training.trainer`
keep starting it: migration 0007 rewrites the old module path in their argv, and only that."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from training_bridge.models import TrainingLauncher

BEFORE = ("training_bridge", "0006_dataset_job_heartbeats")
AFTER = ("training_bridge", "0007_trainer_module_path")

pytestmark = pytest.mark.django_db


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def test_migrating_rewrites_the_old_trainer_path_in_stored_argv_and_back():
    # given the database before the move, with definitions naming the old path and one that
    # does not
    _migrate(BEFORE)
    TrainingLauncher.objects.create(
        name="trainer-by-module",
        argv=["python", "-m", "training_bridge.trainer", "--dataset-dir", "{dataset_dir}",
              "--output-dir", "{output_dir}", "--config", "{config_file}"],
    )  # fmt: skip
    TrainingLauncher.objects.create(
        name="trainer-by-file",
        argv=["python", "/srv/app/training_bridge/trainer/__main__.py", "{config_file}"],
    )
    TrainingLauncher.objects.create(name="team-lora", argv=["/opt/rm/train.sh", "{output_dir}"])

    # when the migration runs
    _migrate(AFTER)

    # then the old path is the new one and nothing else changed
    assert dict(TrainingLauncher.objects.values_list("name", "argv")) == {
        "trainer-by-module": ["python", "-m", "training_bridge.training.trainer",
                              "--dataset-dir", "{dataset_dir}", "--output-dir", "{output_dir}",
                              "--config", "{config_file}"],
        "trainer-by-file": ["python", "/srv/app/training_bridge/training/trainer/__main__.py",
                            "{config_file}"],
        "team-lora": ["/opt/rm/train.sh", "{output_dir}"],
    }  # fmt: skip

    # and migrating back restores the stored argv
    _migrate(BEFORE)
    assert TrainingLauncher.objects.get(name="trainer-by-module").argv[2] == (
        "training_bridge.trainer"
    )
    _migrate(AFTER)
