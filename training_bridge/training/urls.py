"""Routes of training runs and launcher definitions (mounted by training_bridge/urls.py)."""

from django.urls import path

from training_bridge.training.apis import training as training_apis

urlpatterns = [
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
