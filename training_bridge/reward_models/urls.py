"""Routes of reward models in use (mounted by training_bridge/urls.py)."""

from django.urls import path

from training_bridge.reward_models.apis import active_learning as reward_al_apis
from training_bridge.reward_models.apis import adapters as reward_adapter_apis
from training_bridge.reward_models.apis import registry as reward_apis
from training_bridge.reward_models.apis import score_jobs as reward_job_apis
from training_bridge.reward_models.apis import scoring as reward_scoring_apis

urlpatterns = [
    # reward models in use (issue 9)
    path("reward/score", reward_scoring_apis.RewardScoreApi.as_view(), name="reward-score"),
    # large batches: enqueue, then poll (issue 17)
    path(
        "reward/score/jobs", reward_job_apis.RewardScoreJobsApi.as_view(), name="reward-score-jobs"
    ),
    path(
        "reward/score/jobs/<str:job_id>",
        reward_job_apis.RewardScoreJobApi.as_view(),
        name="reward-score-job",
    ),
    # RL trainers' own reward clients (issue 17): Flow-Factory, OpenRLHF
    path(
        "reward/flow-factory/compute",
        reward_adapter_apis.FlowFactoryComputeApi.as_view(),
        name="reward-flow-factory-compute",
    ),
    path(
        "reward/flow-factory/health",
        reward_adapter_apis.FlowFactoryHealthApi.as_view(),
        name="reward-flow-factory-health",
    ),
    path(
        "reward/openrlhf/get_reward",
        reward_adapter_apis.OpenRlhfRewardApi.as_view(),
        name="reward-openrlhf-get-reward",
    ),
    path("reward/models/", reward_apis.RewardModelListApi.as_view(), name="reward-models"),
    path(
        "reward/models/current/",
        reward_apis.RewardModelCurrentApi.as_view(),
        name="reward-model-current",
    ),
    path(
        "reward/models/compare/",
        reward_apis.RewardModelCompareApi.as_view(),
        name="reward-models-compare",
    ),
    path(
        "reward/models/<int:model_id>/",
        reward_apis.RewardModelDetailApi.as_view(),
        name="reward-model",
    ),
    path(
        "reward/models/<int:model_id>/promote/",
        reward_apis.RewardModelPromoteApi.as_view(),
        name="reward-model-promote",
    ),
    path(
        "reward/models/<int:model_id>/evaluate/",
        reward_apis.RewardModelEvaluateApi.as_view(),
        name="reward-model-evaluate",
    ),
    path(
        "reward/models/<int:model_id>/archive/",
        reward_apis.RewardModelArchiveApi.as_view(),
        name="reward-model-archive",
    ),
    path(
        "reward/active-learning/",
        reward_al_apis.RewardActiveLearningApi.as_view(),
        name="reward-active-learning",
    ),
]
