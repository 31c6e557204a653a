"""API of campaigns and their candidates (leads write; leads and ML engineers read).

Views parse the body with a serializer and call the same services as the admin; domain errors
become {"error", "detail", "field"} 4xx bodies through the project's exception handler.
"""

from django.core.files.storage import default_storage
from django.http import HttpResponseBase, HttpResponseRedirect
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound, ValidationFailed
from config.stored_files import stored_file_response
from generation_workers.apis.configs import ERROR_RESPONSES, GenerationErrorSerializer
from generation_workers.models import Campaign, Candidate
from generation_workers.selectors.campaigns import (
    campaign_candidates_select,
    campaign_progress,
    campaigns_progress_annotate,
)
from generation_workers.services.campaigns import (
    campaign_cancel,
    campaign_create,
    campaign_launch,
    campaign_requeue_pending,
    campaign_retry_failed,
)


class CampaignProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    pending = serializers.IntegerField()
    images_per_second = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)


class CampaignSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "prompt_set", "prompt_filter", "configs", "seeds_per_prompt",
            "base_seed", "include_perturbations", "status", "total_items", "reused_items",
            "created_at", "started_at", "finished_at", "progress",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(CampaignProgressSerializer)
    def get_progress(self, campaign: Campaign) -> dict:
        return CampaignProgressSerializer(campaign_progress(campaign=campaign)).data


class CampaignCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    prompt_set = serializers.IntegerField()
    configs = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=50)
    seeds_per_prompt = serializers.IntegerField(default=1)
    base_seed = serializers.IntegerField(default=0)
    include_perturbations = serializers.BooleanField(default=True)
    prompt_filter = serializers.DictField(default=dict)
    launch = serializers.BooleanField(default=False, help_text="Launch right after creating it.")


class CandidateSerializer(serializers.ModelSerializer):
    prompt_text = serializers.CharField(source="prompt.text", read_only=True)
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Candidate
        fields = [
            "id", "campaign", "prompt", "prompt_text", "config", "seed", "params_hash", "status",
            "storage_key", "content_sha256", "width", "height", "duration_ms",
            "generation_params", "error", "attempts", "created_at", "finished_at", "image_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_image_url(self, candidate: Candidate) -> str | None:
        if candidate.status != Candidate.Status.DONE:
            return None
        return candidate_image_url(candidate)


def candidate_image_url(candidate: Candidate) -> str:
    return reverse("api:generation:candidate-image", kwargs={"candidate_id": candidate.pk})


def _campaign(campaign_id: int) -> Campaign:
    campaign = (
        campaigns_progress_annotate(queryset=Campaign.objects.filter(pk=campaign_id))
        .prefetch_related("configs")
        .first()
    )
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}", field="campaign")
    return campaign


class CampaignListApi(ListAPIView):
    serializer_class = CampaignSerializer

    def get_queryset(self):
        return campaigns_progress_annotate(
            queryset=Campaign.objects.prefetch_related("configs")
        ).order_by("-created_at")

    @extend_schema(operation_id="generation_campaigns_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="generation_campaign_create",
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        body = CampaignCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        campaign = campaign_create(
            name=data["name"],
            prompt_set_id=data["prompt_set"],
            config_ids=data["configs"],
            seeds_per_prompt=data["seeds_per_prompt"],
            base_seed=data["base_seed"],
            include_perturbations=data["include_perturbations"],
            prompt_filter=data["prompt_filter"],
            created_by=request.user,
        )
        if data["launch"]:
            campaign_launch(campaign_id=campaign.pk)
        return Response(
            CampaignSerializer(_campaign(campaign.pk)).data, status=status.HTTP_201_CREATED
        )


class CampaignDetailApi(APIView):
    @extend_schema(
        operation_id="generation_campaign", responses={200: CampaignSerializer, **ERROR_RESPONSES}
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(CampaignSerializer(_campaign(campaign_id)).data)


class CampaignActionResultSerializer(serializers.Serializer):
    items = serializers.IntegerField(help_text="Items cancelled, retried or published.")
    campaign = CampaignSerializer()


def _campaign_action(name: str, description: str, service):
    class CampaignActionApi(APIView):
        @extend_schema(
            operation_id=f"generation_campaign_{name}",
            request=None,
            responses={200: CampaignActionResultSerializer, **ERROR_RESPONSES},
            description=description,
        )
        def post(self, request: Request, campaign_id: int) -> Response:
            items = service(campaign_id=campaign_id)
            campaign = CampaignSerializer(_campaign(campaign_id)).data
            return Response({"items": items, "campaign": campaign})

    CampaignActionApi.__name__ = f"Campaign{name.title().replace('_', '')}Api"
    return CampaignActionApi


def _launch(*, campaign_id: int) -> int:
    return campaign_launch(campaign_id=campaign_id).total_items


CampaignLaunchApi = _campaign_action(
    "launch", "Plan every image as a pending candidate and queue the batches.", _launch
)
CampaignCancelApi = _campaign_action(
    "cancel", "Cancel queued items; batches being rendered finish.", campaign_cancel
)
CampaignRetryApi = _campaign_action(
    "retry_failed", "Queue the failed items again.", campaign_retry_failed
)
CampaignRequeueApi = _campaign_action(
    "requeue", "Publish the pending items again (safe: done items are skipped).",
    campaign_requeue_pending,
)  # fmt: skip


class CampaignCandidatesApi(ListAPIView):
    serializer_class = CandidateSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reads the model
            return Candidate.objects.none()
        campaign_id = self.kwargs["campaign_id"]
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise NotFound(f"no campaign {campaign_id}", field="campaign")
        # its own images and those of its keys an earlier campaign made (reused at launch)
        queryset = campaign_candidates_select(campaign=campaign).select_related("prompt")
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Candidate.Status.values:
                raise ValidationFailed(
                    f"status must be one of {', '.join(Candidate.Status.values)}", field="status"
                )
            queryset = queryset.filter(status=wanted)
        return queryset.order_by("id")

    @extend_schema(
        operation_id="generation_campaign_candidates",
        parameters=[OpenApiParameter("status", str, enum=Candidate.Status.values)],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class CandidateImageApi(APIView):
    """The candidate's image: the bytes (local storage; config/stored_files.py) or a redirect
    to a presigned URL (S3)."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="generation_candidate_image",
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            302: OpenApiResponse(description="Redirect to a presigned URL (S3 storage)."),
            404: OpenApiResponse(GenerationErrorSerializer, description="No such image."),
        },
    )
    def get(self, request: Request, candidate_id: int) -> HttpResponseBase:
        candidate = Candidate.objects.filter(pk=candidate_id, status=Candidate.Status.DONE).first()
        if candidate is None:
            raise NotFound(f"candidate {candidate_id} has no image", field="candidate")
        url = default_storage.url(candidate.storage_key)
        if url.startswith(("http://", "https://")):
            return HttpResponseRedirect(url)
        fmt = candidate.storage_key.rsplit(".", 1)[-1]
        return stored_file_response(
            key=candidate.storage_key,
            content_type=f"image/{fmt}",
            # Content-addressed: the bytes behind a key never change.
            cache_control="private, max-age=86400, immutable",
        )


urlpatterns = [
    path("generation/campaigns/", CampaignListApi.as_view(), name="campaign-list"),
    path("generation/campaigns/<int:campaign_id>/", CampaignDetailApi.as_view(), name="campaign"),
    path(
        "generation/campaigns/<int:campaign_id>/launch/",
        CampaignLaunchApi.as_view(),
        name="campaign-launch",
    ),
    path(
        "generation/campaigns/<int:campaign_id>/cancel/",
        CampaignCancelApi.as_view(),
        name="campaign-cancel",
    ),
    path(
        "generation/campaigns/<int:campaign_id>/retry-failed/",
        CampaignRetryApi.as_view(),
        name="campaign-retry-failed",
    ),
    path(
        "generation/campaigns/<int:campaign_id>/requeue/",
        CampaignRequeueApi.as_view(),
        name="campaign-requeue",
    ),
    path(
        "generation/campaigns/<int:campaign_id>/candidates/",
        CampaignCandidatesApi.as_view(),
        name="campaign-candidates",
    ),
    path(
        "generation/candidates/<int:candidate_id>/image/",
        CandidateImageApi.as_view(),
        name="candidate-image",
    ),
]
