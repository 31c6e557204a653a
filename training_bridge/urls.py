from django.urls import path

from training_bridge.apis import datasets
from training_bridge.apis import training as training_apis
from training_bridge.apis.reward import active_learning as reward_al_apis
from training_bridge.apis.reward import registry as reward_apis
from training_bridge.apis.reward import scoring as reward_scoring_apis

app_name = "training"

urlpatterns = [
    path("datasets/", datasets.DatasetListApi.as_view(), name="datasets"),
    path(
        "datasets/<int:dataset_id>/versions/",
        datasets.DatasetVersionListApi.as_view(),
        name="dataset-versions",
    ),
    path(
        "dataset-versions/<int:version_id>/",
        datasets.DatasetVersionDetailApi.as_view(),
        name="dataset-version",
    ),
    path(
        "dataset-versions/<int:version_id>/freeze/",
        datasets.DatasetVersionFreezeApi.as_view(),
        name="dataset-freeze",
    ),
    path(
        "dataset-versions/<int:version_id>/exports/",
        datasets.DatasetExportCreateApi.as_view(),
        name="dataset-exports",
    ),
    path(
        "dataset-versions/<int:version_id>/diff/",
        datasets.DatasetVersionDiffApi.as_view(),
        name="dataset-diff",
    ),
    path(
        "dataset-versions/<int:version_id>/artifacts/<path:name>",
        datasets.DatasetArtifactApi.as_view(),
        name="dataset-artifact",
    ),
    path(
        "dataset-exports/<int:export_id>/",
        datasets.DatasetExportDetailApi.as_view(),
        name="dataset-export",
    ),
    # reward models in use (issue 9)
    path("reward/score", reward_scoring_apis.RewardScoreApi.as_view(), name="reward-score"),
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
        "reward/models/<int:model_id>/archive/",
        reward_apis.RewardModelArchiveApi.as_view(),
        name="reward-model-archive",
    ),
    path(
        "reward/active-learning/",
        reward_al_apis.RewardActiveLearningApi.as_view(),
        name="reward-active-learning",
    ),
    # training runs (issue 8); launcher definitions, read only (issue 14)
    path(
        "training-launchers/",
        training_apis.TrainingLauncherListApi.as_view(),
        name="training-launchers",
    ),
    path("training-runs/", training_apis.TrainingRunListApi.as_view(), name="training-runs"),
    path(
        "training-runs/<int:run_id>/",
        training_apis.TrainingRunDetailApi.as_view(),
        name="training-run",
    ),
    path(
        "training-runs/<int:run_id>/cancel/",
        training_apis.TrainingRunCancelApi.as_view(),
        name="training-run-cancel",
    ),
    path(
        "training-runs/<int:run_id>/metrics/",
        training_apis.TrainingRunMetricsApi.as_view(),
        name="training-run-metrics",
    ),
    path(
        "training-runs/<int:run_id>/artifacts/<path:name>",
        training_apis.TrainingRunArtifactApi.as_view(),
        name="training-run-artifact",
    ),
]
