"""Prometheus metrics: the endpoint, the scrape-time collectors and the workers' exporter.

- `/metrics` (config/urls.py, `metrics_view`): django-prometheus's request, database and cache
  metrics, the counters and histograms the apps increment in their hot paths (annotation,
  generation_workers and training_bridge each keep theirs in their own `metrics.py`), and the
  gauges the collectors named in settings.METRICS_COLLECTORS compute when Prometheus scrapes
  (bounded, indexed queries only; never a scan of judgments). Who may read it: a caller that
  sends `Authorization: Bearer <METRICS_TOKEN>`; without METRICS_TOKEN set nobody (403).
- Several processes (gunicorn workers, Celery's prefork children) share their counters through
  prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR names an empty folder, one per
  machine or pod, set before the process starts.
- A Celery worker started with CELERY_METRICS_PORT serves its processes' counters on that port
  (`worker_metrics_serve`, connected by config/celery.py); it needs PROMETHEUS_MULTIPROC_DIR,
  as its tasks run in child processes.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

_scrape_registry: CollectorRegistry | None = None
_scrape_lock = threading.Lock()


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def counters_registry() -> CollectorRegistry:
    """The counters and histograms of this process, or of every process sharing the
    multiprocess folder."""
    if _multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def scrape_registry() -> CollectorRegistry:
    """The collectors of settings.METRICS_COLLECTORS, built once per process."""
    global _scrape_registry
    with _scrape_lock:
        if _scrape_registry is None:
            registry = CollectorRegistry()
            for path in settings.METRICS_COLLECTORS:
                registry.register(import_string(path)())
            _scrape_registry = registry
    return _scrape_registry


def metrics_caller_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format, for a caller with the metrics token (403 for others)."""
    if not metrics_caller_allowed(request):
        return HttpResponse(
            "metrics: send Authorization: Bearer <METRICS_TOKEN>\n",
            status=403,
            content_type="text/plain",
        )
    body = generate_latest(counters_registry()) + generate_latest(scrape_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class CeleryQueueCollector:
    """`spatialprefs_celery_queue_length{queue}`: messages waiting in each broker queue."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from kombu.exceptions import OperationalError as BrokerUnreachable

        from config.celery import Queue, queue_waiting

        family = GaugeMetricFamily(
            "spatialprefs_celery_queue_length",
            "Messages waiting in a Celery queue (not those a worker holds).",
            labels=["queue"],
        )
        for queue in Queue:
            try:
                family.add_metric([str(queue)], queue_waiting(str(queue)))
            except BrokerUnreachable as exc:
                log.warning("metrics.queue_length.failed queue=%s error=%s", queue, exc)
                break  # the broker is down: no figure rather than a false zero
        yield family


def worker_metrics_serve(**kwargs: object) -> None:
    """Celery's worker_init (the worker's main process): serve every child's counters on
    CELERY_METRICS_PORT, when it is set."""
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    if _multiprocess_dir() is None:
        raise ImproperlyConfigured(
            "CELERY_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: a worker's tasks "
            "run in child processes, whose counters reach the exporter only through that folder "
            "(an empty folder per worker machine or pod; see docs/operations.md)."
        )
    from prometheus_client import start_http_server

    start_http_server(int(port), registry=counters_registry())
    log.info("metrics.worker.serving port=%s", port)
