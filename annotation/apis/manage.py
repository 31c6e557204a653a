"""Leads' endpoints: labeling queues (create, pause, resume) and pair builds.

Only leads (and superusers) reach these; annotators get a 403.
"""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import serializers as s
from annotation.models import LabelingQueue, PairBuild
from annotation.services.pairs import pair_build_start
from annotation.services.queues import (
    labeling_queue_create,
    labeling_queue_pause,
    labeling_queue_resume,
)
from config.errors import NotFound, ValidationFailed

_ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(s.ErrorSerializer, description="Leads only."),
    404: OpenApiResponse(s.ErrorSerializer, description="Unknown queue, campaign or build."),
}


class LeadQueueListApi(ListAPIView):
    serializer_class = s.LeadQueueSerializer
    queryset = LabelingQueue.objects.prefetch_related("allowed_groups", "allowed_users")

    @extend_schema(operation_id="labeling_manage_queues_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="labeling_manage_queue_create",
        request=s.LeadQueueCreateSerializer,
        responses={201: s.LeadQueueSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = s.LeadQueueCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        users = list(get_user_model().objects.filter(username__in=data["allowed_usernames"]))
        missing = set(data["allowed_usernames"]) - {u.get_username() for u in users}
        if missing:
            raise ValidationFailed(
                f"unknown user(s): {', '.join(sorted(missing))}", field="allowed_usernames"
            )
        queue = labeling_queue_create(
            name=data["name"],
            instructions=data["instructions"],
            overlap=data["overlap"],
            lease_seconds=data["lease_seconds"],
            prefetch=data["prefetch"],
            allowed_users=users,
            allowed_group_names=data.get("allowed_groups"),
            created_by=request.user,
            quality=data.get("quality"),
        )
        return Response(s.LeadQueueSerializer(queue).data, status=status.HTTP_201_CREATED)


class LeadQueuePauseApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_queue_pause",
        request=None,
        responses={200: s.LeadQueueSerializer, **_ERRORS},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        return Response(s.LeadQueueSerializer(labeling_queue_pause(queue_id=queue_id)).data)


class LeadQueueResumeApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_queue_resume",
        request=None,
        responses={200: s.LeadQueueSerializer, **_ERRORS},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        return Response(s.LeadQueueSerializer(labeling_queue_resume(queue_id=queue_id)).data)


class LeadPairBuildStartApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_pair_build_start",
        request=s.PairBuildRequestSerializer,
        responses={202: s.PairBuildSerializer, **_ERRORS},
        description="Queue a pair build on the `cpu` workers; poll the build for its counts.",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        body = s.PairBuildRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        build = pair_build_start(
            queue_id=queue_id,
            campaign_id=body.validated_data["campaign"],
            kind=body.validated_data["kind"],
            options=body.validated_data["options"],
            created_by=request.user,
        )
        return Response(s.PairBuildSerializer(build).data, status=status.HTTP_202_ACCEPTED)


class LeadPairBuildDetailApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_pair_build_detail",
        responses={200: s.PairBuildSerializer, **_ERRORS},
    )
    def get(self, request: Request, build_id: int) -> Response:
        build = PairBuild.objects.filter(pk=build_id).first()
        if build is None:
            raise NotFound(f"pair build {build_id} does not exist", field="build")
        return Response(s.PairBuildSerializer(build).data)
