"""The demo's seeding (frontend/demo.py, `manage.py seed_demo`) through a real worker: its
model learns something measurable on a test split, and seeding again adds nothing and undoes
nothing a user did in between (a changed password, another model promoted)."""

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from annotation.models import Judgment
from config.celery import app
from frontend.demo import demo_seed
from generation_workers.models import Candidate
from tests.conftest import VENV_BIN, database_url_of_test
from tests.factories import RewardModelFactory
from training_bridge.models import DatasetVersion, RewardModel, TrainingRun
from training_bridge.reward_models.services.evaluation import reward_models_compare
from training_bridge.reward_models.services.registry import reward_model_promote

REPO = Path(__file__).resolve().parents[2]
QUEUES = ("gpu", "cpu", "training")


@pytest.fixture
def demo_worker(transactional_db, tmp_path) -> Iterator[Path]:
    """The demo's worker (every queue, two processes) on this test's database and media."""
    with app.connection_for_write() as conn:
        for name in QUEUES:
            conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False)
            conn.default_channel.queue_purge(name)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "STORAGE_BACKEND": "local",
        "TRAINING_WORK_DIR": str(tmp_path / "work"),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", ",".join(QUEUES),
             "--concurrency", "2", "--hostname", f"demo-{uuid.uuid4().hex[:6]}@%h",
             "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    yield log
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.worker
def test_the_demo_model_beats_chance_on_its_test_split_and_seeding_again_undoes_nothing(
    demo_worker, tmp_path
):
    logins_file = tmp_path / "demo-logins.txt"

    # given a seeded demo
    logins = demo_seed(logins_file=logins_file, timeout=900)

    version = DatasetVersion.objects.get(dataset__name="demo")
    assert version.status == "frozen"
    run = TrainingRun.objects.get(dataset_version=version)
    assert run.status == "succeeded", demo_worker.read_text()[-3000:]
    demo_model = RewardModel.objects.get(run=run)
    assert demo_model.status == "promoted"
    # its test split holds pairs of object pairs never trained on, and the model beats chance
    other = RewardModelFactory(
        name=demo_model.name,
        version=demo_model.version + 1,
        artifact_key=demo_model.artifact_key,
        dataset_version=version,
    )
    compared = reward_models_compare(model_a_id=demo_model.pk, model_b_id=other.pk, run_now=True)
    overall = compared.rows[0]
    assert (overall["group"], overall["key"]) == ("overall", "all")
    assert overall["count"] >= 50
    assert overall["a"] > 0.6

    # when a user changes a password and an ML engineer promotes another model
    lead = get_user_model().objects.get(username="demo-lead")
    lead.set_password("the-lead-chose-this")
    lead.save()
    reward_model_promote(model_id=other.pk)
    counts = (
        Candidate.objects.count(),
        Judgment.objects.count(),
        DatasetVersion.objects.count(),
        TrainingRun.objects.count(),
    )

    # then seeding again adds nothing and leaves their changes as they are
    again = demo_seed(logins_file=logins_file, timeout=900)

    assert again == logins
    lead.refresh_from_db()
    assert lead.check_password("the-lead-chose-this")
    assert (
        Candidate.objects.count(),
        Judgment.objects.count(),
        DatasetVersion.objects.count(),
        TrainingRun.objects.count(),
    ) == counts
    statuses = dict(RewardModel.objects.values_list("pk", "status"))
    assert statuses == {demo_model.pk: "archived", other.pk: "promoted"}
