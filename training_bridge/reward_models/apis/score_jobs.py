"""The enqueue/poll pair for large batches (`services/score_jobs.py`):

- `POST /api/reward/score/jobs`: the body of `POST /api/reward/score` (any form), checked now
  (a bad payload is its 4xx at once), at most REWARD_SCORE_JOB_MAX_IMAGES [512] images; answers
  202 `{"id", "status": "queued", "url", "expires_in"}` with a Location header.
- `GET /api/reward/score/jobs/<id>`: 202 `{"id", "status": "queued" | "running"}` with
  Retry-After until the job is done, then what the synchronous call would have answered (its
  status and body). Unknown, expired or another account's job: 404.

Who: the scoring API's rule (ML engineers and admins, token or session); a job is read only by
the account that posted it.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from config.errors import NotFound
from config.parsers import JSONParser, MultiPartParser
from training_bridge.reward_models.apis.registry import RewardErrorSerializer
from training_bridge.reward_models.apis.score_requests import (
    score_request_read,
    score_result_data,
    score_run,
)
from training_bridge.reward_models.apis.scoring import (
    SCORE_ERRORS,
    RetryAfterMixin,
    RewardScoreMultipartSerializer,
    RewardScoreRequestSerializer,
    RewardScoreResponseSerializer,
)
from training_bridge.reward_models.scoring.payloads import score_limits
from training_bridge.reward_models.services.score_jobs import (
    job_ttl_seconds,
    score_job_get,
    score_job_submit,
)

JOB_ID_CHARS = frozenset("0123456789abcdef")

_JOB_STATE = inline_serializer(
    "RewardScoreJobState",
    {"id": serializers.CharField(), "status": serializers.CharField(help_text="queued | running"),
     "url": serializers.CharField(required=False),
     "expires_in": serializers.IntegerField(required=False, help_text="Seconds kept.")},
)  # fmt: skip


class RewardScoreJobsApi(RetryAfterMixin, APIView):
    """Hand a large scoring request over; poll its URL for the answer."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="reward_score_job_create",
        request={
            "application/json": RewardScoreRequestSerializer,
            "multipart/form-data": RewardScoreMultipartSerializer,
        },
        responses={202: _JOB_STATE, **SCORE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        limits = dataclasses.replace(
            score_limits(), max_images=int(getattr(settings, "REWARD_SCORE_JOB_MAX_IMAGES", 512))
        )
        parsed = score_request_read(request, limits=limits)

        def run() -> tuple[int, dict]:
            return 200, score_result_data(score_run(parsed), parsed)

        job = score_job_submit(owner_id=request.user.pk, run=run)
        url = f"{request.path.rstrip('/')}/{job.id}"
        body = {"id": job.id, "status": job.status, "url": url, "expires_in": job_ttl_seconds()}
        return Response(body, status=202, headers={"Location": url})


class RewardScoreJobApi(RetryAfterMixin, APIView):
    """A scoring job's state, or its answer once done."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]

    @extend_schema(
        operation_id="reward_score_job",
        responses={
            200: RewardScoreResponseSerializer,
            202: _JOB_STATE,
            404: OpenApiResponse(RewardErrorSerializer, description="Unknown, expired or not "
                                 "yours."),
            503: OpenApiResponse(RewardErrorSerializer, description="The job store (Redis) did "
                                 "not answer: retry."),
        },
    )  # fmt: skip
    def get(self, request: Request, job_id: str) -> Response:
        job = None
        if len(job_id) == 32 and set(job_id) <= JOB_ID_CHARS:
            job = score_job_get(job_id=job_id, owner_id=request.user.pk)
        if job is None:
            raise NotFound(
                f"no scoring job {job_id} of yours (answers are kept {job_ttl_seconds()} s)",
                field="job_id",
            )
        if job.status != "done":
            return Response({"id": job.id, "status": job.status}, status=202,
                            headers={"Retry-After": "1"})  # fmt: skip
        return Response(job.body, status=job.code)
