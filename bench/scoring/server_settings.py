"""The bench's gunicorn settings: the platform's own, with the scoring engine's batch limit
(REWARD_SCORING_MAX_BATCH) from BENCH_SCORING_MAX_BATCH (`run.py --max-batch`)."""

import os

from config.settings import *  # noqa: F403

REWARD_SCORING_MAX_BATCH = int(os.environ["BENCH_SCORING_MAX_BATCH"])
