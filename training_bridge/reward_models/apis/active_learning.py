"""Active learning over HTTP: the pairs of a campaign the reward model is least sure of go into
a labeling queue (leads and ML engineers). Small campaigns are done in the request (201), large
ones on the `cpu` queue (202).
"""

from __future__ import annotations

import math

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training_bridge.reward_models.apis.registry import ERRORS, RewardModelSerializer
from training_bridge.reward_models.services.active_learning import KINDS, active_learning_start


class RewardActiveLearningRequestSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(min_value=1)
    model = serializers.IntegerField(
        required=False, min_value=1, help_text="A model id; default: the promoted one."
    )
    model_name = serializers.CharField(required=False, max_length=100)
    queue = serializers.IntegerField(required=False, min_value=1, help_text="An existing queue.")
    queue_name = serializers.CharField(
        required=False, max_length=200, help_text="Made (open to all annotators) if missing."
    )
    pairs = serializers.IntegerField(default=100, help_text="How many pairs to queue.")
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=list(KINDS)), default=lambda: list(KINDS)
    )
    priority = serializers.IntegerField(default=0)
    exclude_queued = serializers.BooleanField(
        default=True, help_text="Leave out pairs already in another queue."
    )


class RewardUncertainPairSerializer(serializers.Serializer):
    candidate_a = serializers.IntegerField()
    candidate_b = serializers.IntegerField()
    kind = serializers.CharField()
    prompt = serializers.IntegerField()
    z = serializers.FloatField(
        allow_null=True, help_text="|mean_a - mean_b| / sqrt(std_a^2 + std_b^2)"
    )
    mean_a = serializers.FloatField()
    std_a = serializers.FloatField(allow_null=True)
    mean_b = serializers.FloatField()
    std_b = serializers.FloatField(allow_null=True)


class RewardQueueRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RewardActiveLearningSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="done | queued (running on the cpu queue)")
    queue = RewardQueueRefSerializer()
    model = RewardModelSerializer()
    candidates_scored = serializers.IntegerField(allow_null=True)
    pairs_considered = serializers.IntegerField(allow_null=True)
    pairs_queued = serializers.IntegerField(allow_null=True)
    pairs_existing = serializers.IntegerField(allow_null=True)
    selected = RewardUncertainPairSerializer(many=True, help_text="Least certain first.")


class RewardActiveLearningApi(APIView):
    """Queue the pairs of a campaign the reward model is least sure of into a labeling queue."""

    @extend_schema(
        operation_id="reward_active_learning",
        request=RewardActiveLearningRequestSerializer,
        responses={
            201: OpenApiResponse(RewardActiveLearningSerializer, description="Queued now."),
            202: OpenApiResponse(
                RewardActiveLearningSerializer, description="Running on the cpu queue."
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = RewardActiveLearningRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        started = active_learning_start(
            campaign_id=data["campaign"], model_id=data.get("model"),
            model_name=data.get("model_name"), queue_id=data.get("queue"),
            queue_name=data.get("queue_name"), pairs=data["pairs"], kinds=data["kinds"],
            priority=data["priority"], exclude_queued=data["exclude_queued"],
            created_by=request.user,
        )  # fmt: skip
        result = started.result
        payload = {
            "status": "done" if result else "queued",
            "queue": {"id": started.queue.pk, "name": started.queue.name},
            "model": RewardModelSerializer(started.model).data,
            "candidates_scored": result.candidates_scored if result else None,
            "pairs_considered": result.pairs_considered if result else None,
            "pairs_queued": result.pairs_queued if result else None,
            "pairs_existing": result.pairs_existing if result else None,
            "selected": [
                {
                    "candidate_a": p.candidate_a,
                    "candidate_b": p.candidate_b,
                    "kind": p.kind,
                    "prompt": p.prompt_id,
                    "z": p.z if math.isfinite(p.z) else None,
                    "mean_a": p.mean_a,
                    "std_a": p.std_a,
                    "mean_b": p.mean_b,
                    "std_b": p.std_b,
                }
                for p in (result.selected if result else [])
            ],  # fmt: skip
        }
        code = status.HTTP_201_CREATED if result else status.HTTP_202_ACCEPTED
        return Response(payload, status=code)
