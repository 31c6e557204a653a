"""Fixtures of the training tests: a tiny CLIP-style folder, exported scene folders, and a real
Celery worker on the `training` queue (test database, broker, moto S3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from tests.conftest import VENV_BIN, database_url_of_test, s3_client
from tests.training.scenes import export_write, scene_records

REPO = Path(__file__).resolve().parents[2]
WORDS = ["a", "photo", "of", "cat", "dog", "cup", "lamp", "book", "vase", "chair", "clock",
         "to", "the", "left", "right", "above", "below"]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_clip_folder(tmp_path_factory) -> Path:
    """A random-weight CLIP-style model (CLIPModel, hidden size 32, 2 layers, 32 px images)
    saved as a transformers folder with a CLIPTokenizer (vocab.json + merges.txt)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-clip"
    folder.mkdir()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges = ["#version: 0.2"]
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    for word in WORDS:  # merge each word left to right: c a -> ca, ca t</w> -> cat</w>
        pieces = [*word[:-1], f"{word[-1]}</w>"]
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            if f"{pieces[0]} {pieces[1]}" not in merges:
                merges.append(f"{pieces[0]} {pieces[1]}")
            vocab.setdefault(merged, len(vocab))
            pieces = [merged, *pieces[2:]]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 32, **ids},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def scenes_folder(tmp_path_factory) -> Path:
    """A real Parquet and WebDataset export of 60 procedural scene pairs (32 px), no database."""
    records, images = scene_records(60, seed=5, size=32)
    folder = tmp_path_factory.mktemp("scenes")
    export_write(folder, records, images, fmt="parquet")
    export_write(folder, records, images, fmt="webdataset")
    return folder


def queue_purge(name: str) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False)
        conn.default_channel.queue_purge(name)


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def worker_launch(log: Path, env: dict[str, str]) -> Worker:
    """A real Celery worker on the `training` queue as production runs it (prefork, one
    process, prefetch 1), in its own session so a test can kill it whole."""
    queue_purge("training")
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of_test(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-Q",
                "training",
                "--concurrency",
                "1",
                "--prefetch-multiplier",
                "1",
                "--hostname",
                f"training-{uuid.uuid4().hex[:6]}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],  # fmt: skip
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process=process, log=log)
    deadline = time.monotonic() + 90
    while " ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"the worker did not start:\n{worker.output()[-4000:]}")
        time.sleep(0.2)
    return worker


@pytest.fixture(scope="module")
def s3_bucket(moto_endpoint) -> dict[str, str]:
    """One moto bucket for a module's worker tests; the worker's environment for it."""
    bucket = f"training-{uuid.uuid4().hex[:10]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    return {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.fixture
def on_s3(s3_bucket, settings) -> Iterator[dict[str, str]]:
    """This test's default storage is the module's moto bucket (as the worker's is); the
    settings fixture puts it back afterwards (Django then drops the storages it built)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_bucket["S3_BUCKET"],
                "endpoint_url": s3_bucket["S3_ENDPOINT_URL"],
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "signature_version": "s3v4",
                "addressing_style": "path",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    yield s3_bucket


@pytest.fixture(scope="module")
def training_worker(django_db_setup, django_db_blocker, s3_bucket, tmp_path_factory):
    """One real training worker for a module's tests (heartbeats every 0.5 s)."""
    with django_db_blocker.unblock():
        worker = worker_launch(
            tmp_path_factory.mktemp("worker") / "worker.log",
            {**s3_bucket, "TRAINING_HEARTBEAT_SECONDS": "0.5"},
        )
    yield worker
    worker.stop()


def wait_for(condition: Callable[[], bool], worker: Worker | None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    output = worker.output()[-6000:] if worker else ""
    raise AssertionError(f"timed out after {seconds} s; worker log:\n{output}")
