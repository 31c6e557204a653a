"""Generation's metrics (config/metrics.py serves them): images rendered and failed per
generator config, counted in the process that recorded them (no extra statement).

"failed" counts every item that ended failed: a worker's report (a render or store error), and
the items nobody reported on: the lease sweep giving up after the last attempt (its worker
died each time) and the last retry of a transient error failing those nobody holds. A campaign's
`progress_failed` and this counter then tell the same story.
"""

from collections import Counter as Tally
from collections.abc import Iterable

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


def images_failed(*, configs: Iterable[str]) -> None:
    """Items failed without a worker's report: one config name per item."""
    for config, failed in Tally(configs).items():
        images_recorded(config=config, done=0, failed=failed)
