"""A Celery worker's own exporter (CELERY_METRICS_PORT, multiprocess mode): a real worker
renders a real procedural campaign in its child processes, and its port serves their counts."""

import urllib.request

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client.parser import text_string_to_metric_families

from config.celery import Queue
from config.metrics import worker_metrics_serve
from generation_workers.models import Campaign
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_procedural_ensure
from tests.conftest import _free_port
from tests.generation.conftest import (  # noqa: F401 (worker_start: a fixture)
    campaign_wait,
    prompt_set_make,
    queue_purge,
    worker_start,
)


def test_a_metrics_port_without_the_multiprocess_folder_stops_the_worker(monkeypatch):
    monkeypatch.setenv("CELERY_METRICS_PORT", str(_free_port()))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ImproperlyConfigured, match="PROMETHEUS_MULTIPROC_DIR is not"):
        worker_metrics_serve()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_serves_the_images_its_children_rendered(worker_start, tmp_path):  # noqa: F811
    queue_purge(Queue.GPU)
    config = generator_config_procedural_ensure(name="procedural", width=64, height=64)
    campaign = campaign_create(
        name="metrics", prompt_set_id=prompt_set_make(originals=2).pk, config_ids=[config.pk],
        seeds_per_prompt=2,
    )  # fmt: skip
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = _free_port()
    worker = worker_start(
        queues=Queue.GPU,
        concurrency=2,
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder), "CELERY_METRICS_PORT": str(port)},
    )

    campaign_launch(campaign_id=campaign.pk)
    campaign = campaign_wait(campaign, workers=[worker])
    assert campaign.status == Campaign.Status.COMPLETED

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    # 4 prompts (2 originals, each with its flipped copy) x 2 seeds, all rendered
    done = (("config", "procedural"), ("outcome", "done"))
    assert samples[("spatialprefs_images_total", done)] == 8
