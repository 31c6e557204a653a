"""Fixtures of the generation tests: prompt sets with perturbations, the tiny Stable Diffusion
folder, and real Celery worker processes on the test database, Redis and moto's S3."""

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from generation_workers.models import Campaign, Prompt, PromptSet
from tests.conftest import database_url_of_test

REPO = Path(__file__).resolve().parents[2]
CELERY = REPO / ".venv" / "bin" / "celery"
OBJECTS = ["cat", "dog", "cup", "chair", "lamp", "book"]
RELATION_FLIPS = {"left_of": "right_of", "above": "below", "right_of": "left_of"}
TEST_LEASE_SECONDS = 6


def scene(subject: str, relation: str, obj: str) -> dict:
    return {
        "objects": [
            {"id": "o1", "name": subject, "count": 1, "attributes": {}},
            {"id": "o2", "name": obj, "count": 1, "attributes": {}},
        ],
        "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
        "scene": None,
    }


def prompt_set_make(*, originals: int = 2, perturbed: bool = True, name: str = "") -> PromptSet:
    """A ready set: `originals` two-object prompts, each with one flipped (perturbed) copy."""
    prompt_set = PromptSet.objects.create(
        name=name or f"set-{uuid.uuid4().hex[:8]}",
        source=PromptSet.Source.TEMPLATE,
        status=PromptSet.Status.READY,
    )
    relations = list(RELATION_FLIPS)
    for index in range(originals):
        a, b = OBJECTS[index % len(OBJECTS)], OBJECTS[(index + 1) % len(OBJECTS)]
        relation = relations[index % len(relations)]
        text = f"a photo of a {a} {relation.replace('_', ' ')} a {b}"
        original = Prompt.objects.create(
            prompt_set=prompt_set,
            text=text,
            normalized_text=text,
            structure=scene(a, relation, b),
            relation_keys=f"|{relation}|",
            object_keys=f"|{a}|{b}|",
            group_key=f"{prompt_set.name}-{index}",
            tier=1,
            split="train" if index % 2 == 0 else "val",
        )
        if perturbed:
            flipped = RELATION_FLIPS[relation]
            text = f"a photo of a {a} {flipped.replace('_', ' ')} a {b}"
            Prompt.objects.create(
                prompt_set=prompt_set,
                text=text,
                normalized_text=text,
                structure=scene(a, flipped, b),
                relation_keys=f"|{flipped}|",
                object_keys=f"|{a}|{b}|",
                group_key=original.group_key,
                split=original.split,
                parent=original,
                perturbation_type=Prompt.Perturbation.FLIP,
                perturbation={"relation": 0, "from": relation, "to": flipped},
                num_perturbations=1,
            )
    prompt_set.prompt_count = prompt_set.prompts.count()
    prompt_set.save(update_fields=["prompt_count"])
    return prompt_set


@pytest.fixture(scope="session")
def tiny_sd_folder(tmp_path_factory) -> Path:
    """A random-weight Stable Diffusion pipeline saved once per run (loads like a real one)."""
    from generation_workers.backends.tiny import tiny_pipeline_save

    return tiny_pipeline_save(tmp_path_factory.mktemp("models") / "tiny-sd")


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    queues: str
    stopped: bool = field(default=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker did not start:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """kill -9 the whole worker: its main process and its pool processes."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.stopped = True

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def queue_purge(name: str) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False)
        conn.default_channel.queue_purge(name)


def queue_taken(name: str) -> list[tuple[dict, object]]:
    """The messages waiting in a queue, taken off it: (headers, decoded payload) each."""
    taken = []
    with app.connection_for_write() as conn:
        simple = conn.SimpleQueue(name)
        while True:
            try:
                message = simple.get(timeout=0.2)
            except simple.Empty:
                break
            taken.append((message.headers, message.payload))
            message.ack()
        simple.close()
    return taken


@pytest.fixture
def worker_start(tmp_path, s3_settings) -> Iterator[Callable[..., Worker]]:
    """Start real Celery workers (subprocesses) on the test database, the broker and moto S3."""
    started: list[Worker] = []

    def start(
        *,
        queues: str,
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        beat: bool = False,
    ) -> Worker:
        """`beat`: the worker runs Celery beat too (-B), as `make demo`'s worker does."""
        log = tmp_path / f"worker-{len(started)}.log"
        embedded_beat = ["-B", "--schedule", str(tmp_path / f"beat-{len(started)}")] if beat else []
        environment = {
            **os.environ,
            **s3_settings,
            "DATABASE_URL": database_url_of_test(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "GENERATION_LEASE_SECONDS": str(TEST_LEASE_SECONDS),
            "OMP_NUM_THREADS": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **(env or {}),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(CELERY),
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    queues,
                    "--concurrency",
                    str(concurrency),
                    "--prefetch-multiplier",
                    "1",
                    "--hostname",
                    f"test-{uuid.uuid4().hex[:6]}@%h",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    *embedded_beat,
                ],  # fmt: skip
                cwd=REPO,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process=process, log=log, queues=queues)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def campaign_wait(campaign: Campaign, *, timeout: float = 90, workers=()) -> Campaign:
    """Poll until the campaign is no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.RUNNING:
            return campaign
        time.sleep(0.2)
    logs = "\n".join(w.output()[-3000:] for w in workers)
    raise AssertionError(f"campaign {campaign.pk} still running after {timeout} s\n{logs}")


@pytest.fixture
def own_queue() -> Iterator[str]:
    """A queue of this test's own (a config's queue), so no other test's message reaches it."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    queue_purge(name)
