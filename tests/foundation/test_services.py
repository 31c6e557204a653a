"""The real services: S3 over HTTP through the storage backend, Redis as the Celery broker."""

import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from kombu import Connection

from config.celery import Queue, app
from tests.conftest import s3_client


def test_storage_stores_and_reads_back_a_file_over_s3(s3_settings, moto_endpoint):
    storage = storages["default"]
    key = storage.save(f"probe/{uuid.uuid4().hex}.txt", ContentFile(b"spatial"))
    assert storage.open(key).read() == b"spatial"
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_settings["S3_BUCKET"])
    assert [obj["Key"] for obj in listed["Contents"]] == [key]
    assert storage.url(key).startswith(f"{moto_endpoint}/{s3_settings['S3_BUCKET']}/{key}?")


def test_default_storage_is_local_files_without_s3(tmp_path):
    key = default_storage.save("probe.txt", ContentFile(b"local"))
    assert (tmp_path / "media" / key).read_bytes() == b"local"


def test_redis_broker_carries_a_message():
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    name = f"probe-{uuid.uuid4().hex}"
    with Connection(settings.CELERY_BROKER_URL) as conn:
        queue = conn.SimpleQueue(name)
        queue.put({"hello": "worker"})
        message = queue.get(timeout=5)
        assert message.payload == {"hello": "worker"}
        message.ack()
        queue.queue.delete()
        queue.close()


def test_queues_are_declared_once():
    assert [q.value for q in Queue] == ["gpu", "cpu", "training"]
    assert app.conf.task_default_queue == "cpu"
    assert app.conf.task_serializer == "json"
    assert (
        app.conf.broker_transport_options["visibility_timeout"]
        > settings.CELERY_LONGEST_TASK_SECONDS
    )
