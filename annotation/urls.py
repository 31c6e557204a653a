from django.urls import path

from annotation.apis import images, labeling, manage, quality

app_name = "annotation"

urlpatterns = [
    path("labeling/queues/", labeling.QueueListApi.as_view(), name="queue-list"),
    path("labeling/queues/<int:queue_id>/", labeling.QueueDetailApi.as_view(), name="queue"),
    path("labeling/queues/<int:queue_id>/next/", labeling.NextApi.as_view(), name="next"),
    path("labeling/queues/<int:queue_id>/submit/", labeling.SubmitApi.as_view(), name="submit"),
    path(
        "labeling/queues/<int:queue_id>/heartbeat/",
        labeling.HeartbeatApi.as_view(),
        name="heartbeat",
    ),
    path("labeling/queues/<int:queue_id>/undo/", labeling.UndoApi.as_view(), name="undo"),
    path(
        "labeling/queues/<int:queue_id>/progress/",
        labeling.ProgressApi.as_view(),
        name="progress",
    ),
    path(
        "labeling/queues/<int:queue_id>/examples/<slug:name>/",
        images.ExampleImageApi.as_view(),
        name="example-image",
    ),
    path("labeling/images/<str:token>/", images.ImageApi.as_view(), name="image"),
    path("labeling/manage/queues/", manage.LeadQueueListApi.as_view(), name="manage-queues"),
    path(
        "labeling/manage/queues/<int:queue_id>/pause/",
        manage.LeadQueuePauseApi.as_view(),
        name="manage-queue-pause",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/resume/",
        manage.LeadQueueResumeApi.as_view(),
        name="manage-queue-resume",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/pair-builds/",
        manage.LeadPairBuildStartApi.as_view(),
        name="manage-pair-build-start",
    ),
    path(
        "labeling/manage/pair-builds/<int:build_id>/",
        manage.LeadPairBuildDetailApi.as_view(),
        name="manage-pair-build",
    ),
    # quality control (leads): annotation/apis/quality.py
    path(
        "labeling/manage/queues/<int:queue_id>/quality/",
        quality.QueueQualityApi.as_view(),
        name="manage-queue-quality",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/quality/pairs/",
        quality.QueueQualityPairsApi.as_view(),
        name="manage-queue-quality-pairs",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/annotators/<int:user_id>/resume/",
        quality.AnnotatorResumeApi.as_view(),
        name="manage-annotator-resume",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/annotators/<int:user_id>/pause/",
        quality.AnnotatorPauseApi.as_view(),
        name="manage-annotator-pause",
    ),
    path(
        "labeling/manage/queues/<int:queue_id>/gold/confirm/",
        quality.GoldConfirmApi.as_view(),
        name="manage-gold-confirm",
    ),
    path(
        "labeling/manage/annotators/quality/",
        quality.AnnotatorsQualityApi.as_view(),
        name="manage-annotators-quality",
    ),
    path(
        "labeling/manage/pairs/<int:pair_id>/",
        quality.PairDetailApi.as_view(),
        name="manage-pair",
    ),
    path(
        "labeling/manage/pairs/<int:pair_id>/gold/",
        quality.PairGoldApi.as_view(),
        name="manage-pair-gold",
    ),
    path(
        "labeling/manage/pairs/<int:pair_id>/review/",
        quality.PairReviewApi.as_view(),
        name="manage-pair-review",
    ),
]
