"""Generation's metrics (config/metrics.py serves them): images rendered and failed per
generator config, counted in the worker that recorded them (no extra statement)."""

from prometheus_client import Counter

IMAGES = Counter(
    "spatialprefs_images",
    "Candidate images recorded by generation workers, by generator config and outcome.",
    ["config", "outcome"],
)


def images_recorded(*, config: str, done: int, failed: int) -> None:
    if done:
        IMAGES.labels(config, "done").inc(done)
    if failed:
        IMAGES.labels(config, "failed").inc(failed)
