"""training_bridge's metrics (config/metrics.py serves them).

Scoring: `SCORING_SECONDS` (the scoring of one request, model loaded) and `SCORING_BATCH`
(images per request), observed in the process that scored. `ProgressCollector` reports, when
Prometheus scrapes, the running exports' and training runs' progress (a few rows: those
running, at most PROGRESS_ROWS of each).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

SCORING_SECONDS = Histogram(
    "spatialprefs_scoring_seconds",
    "Seconds to score one request's images with the loaded reward model.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SCORING_BATCH = Histogram(
    "spatialprefs_scoring_batch_size",
    "Images per scoring request.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)

PROGRESS_ROWS = 100


def scoring_observed(*, seconds: float, images: int) -> None:
    SCORING_SECONDS.observe(seconds)
    SCORING_BATCH.observe(images)


class ProgressCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from training_bridge.models import DatasetExport, TrainingRun

        done = GaugeMetricFamily(
            "spatialprefs_export_records_done",
            "Records written by a running dataset export.",
            labels=["export", "format"],
        )
        total = GaugeMetricFamily(
            "spatialprefs_export_records_total",
            "Records a running dataset export will write.",
            labels=["export", "format"],
        )
        running = DatasetExport.objects.filter(status=DatasetExport.Status.RUNNING)
        for pk, fmt, records_done, records_total in running.order_by("pk").values_list(
            "pk", "format", "records_done", "records_total"
        )[:PROGRESS_ROWS]:
            done.add_metric([str(pk), fmt], records_done)
            total.add_metric([str(pk), fmt], records_total)
        step = GaugeMetricFamily(
            "spatialprefs_training_step", "Step a running training run reached.", labels=["run"]
        )
        steps = GaugeMetricFamily(
            "spatialprefs_training_total_steps",
            "Steps a running training run will take.",
            labels=["run"],
        )
        runs = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING)
        for pk, run_step, total_steps in runs.order_by("pk").values_list(
            "pk", "step", "total_steps"
        )[:PROGRESS_ROWS]:
            step.add_metric([str(pk)], run_step)
            steps.add_metric([str(pk)], total_steps)
        yield from (done, total, step, steps)
