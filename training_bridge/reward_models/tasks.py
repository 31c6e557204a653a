"""Celery tasks of reward models in use (queue `cpu`), published by name by the services
(training_bridge/publishing.py).

Both are idempotent: an evaluation is stored again over itself; active learning picks the same
pairs for the same request and a pair is stored once per queue. Hence late acks.
"""

import logging

from celery import shared_task

from config.errors import DomainError
from training_bridge.datasets.tasks import TRANSIENT
from training_bridge.publishing import ACTIVE_LEARNING_RUN, REWARD_MODEL_EVALUATE
from training_bridge.reward_models.services.active_learning import active_learning_queue
from training_bridge.reward_models.services.evaluation import reward_model_evaluate

log = logging.getLogger(__name__)

REWARD_JOB = {
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": 2 * 3600,
    "time_limit": 2 * 3600 + 300,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


@shared_task(name=REWARD_MODEL_EVALUATE.name, route_queue=REWARD_MODEL_EVALUATE.queue, **REWARD_JOB)
def reward_model_evaluate_task(*, model_id: int, version_id: int, refresh: bool = False) -> None:
    """A reward model's accuracy on a frozen version's test split, stored on the model."""
    try:
        evaluation = reward_model_evaluate(
            model_id=model_id, version_id=version_id, refresh=refresh
        )
    except DomainError as exc:
        log.warning("reward.evaluate.task_failed model=%s error=%s", model_id, exc)
        return
    log.info("reward.evaluate.task_done model=%s accuracy=%s", model_id, evaluation["accuracy"])


@shared_task(name=ACTIVE_LEARNING_RUN.name, route_queue=ACTIVE_LEARNING_RUN.queue, **REWARD_JOB)
def active_learning_task(
    *,
    campaign_id: int,
    model_id: int,
    queue_id: int,
    pairs: int,
    kinds: list[str],
    priority: int = 0,
    exclude_queued: bool = True,
) -> None:
    """Queue the pairs of a campaign the reward model is least sure of."""
    try:
        result = active_learning_queue(
            campaign_id=campaign_id, model_id=model_id, queue_id=queue_id, pairs=pairs,
            kinds=kinds, priority=priority, exclude_queued=exclude_queued,
        )  # fmt: skip
    except DomainError as exc:
        log.warning("reward.active_learning.task_failed queue=%s error=%s", queue_id, exc)
        return
    log.info("reward.active_learning.task_done queue=%s queued=%d", queue_id, result.pairs_queued)
