"""The annotator's loop: queues, next, submit, heartbeat, undo, progress.

Open to any signed-in user, but every call checks that the user is one of the queue's
annotators (listed, or through a group) and that the queue is active: 404 unknown queue,
403 not yours, 409 paused. Errors are {"error", "detail", "field"}.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import serializers as s
from annotation.apis.images import example_image_url
from annotation.models import LabelingQueue
from annotation.selectors import (
    annotator_progress,
    labeling_queue_for_labeling,
    queues_for_annotator,
)
from annotation.services.assignment import leases_heartbeat, pairs_next_for_client
from annotation.services.images import ImageUrlMaker
from annotation.services.judgments import judgment_submit
from annotation.services.results import LeasedItem, SubmitResult
from annotation.services.undo import judgment_undo
from config.errors import ValidationFailed

_ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(s.ErrorSerializer, description="Not one of this queue's annotators."),
    404: OpenApiResponse(s.ErrorSerializer, description="Unknown queue or pair."),
    409: OpenApiResponse(
        s.ErrorSerializer,
        description="queue_paused, pair_complete, no_lease, lease_expired, already_judged, "
        "submission_id_reused, submission_undone, not_last_answer, pair_taken.",
    ),
}


def _item_data(item: LeasedItem, urls: ImageUrlMaker) -> dict[str, Any]:
    structure = item.prompt_structure if isinstance(item.prompt_structure, dict) else {}
    return {
        "pair": item.pair_id,
        "prompt": {
            "text": item.prompt_text,
            "objects": structure.get("objects") or [],
            "relations": structure.get("relations") or [],
            "scene": structure.get("scene") if isinstance(structure.get("scene"), str) else None,
        },
        "left": {"url": urls.url(pair_id=item.pair_id, side="left")},
        "right": {"url": urls.url(pair_id=item.pair_id, side="right")},
        "lease_expires_at": item.expires_at,
    }


def _body(request: Request) -> dict[str, Any]:
    """The JSON object a request carries ({} when empty). The hot endpoints validate through
    their services, which name the offending field; the serializers describe them in OpenAPI."""
    data = request.data
    if not hasattr(data, "get"):
        raise ValidationFailed("the request body must be a JSON object", field="body")
    return data


class _LabelingApi(APIView):
    """The labeling loop: a session (the browser) or an API token, the API's defaults."""


def _queue_data(queue: LabelingQueue) -> dict[str, Any]:
    return {
        "id": queue.pk,
        "name": queue.name,
        "instructions": queue.instructions,
        "prefetch": queue.prefetch,
        "lease_seconds": queue.lease_seconds,
        "criteria": queue.criteria or [],
    }


class QueueListApi(_LabelingApi):
    @extend_schema(operation_id="labeling_queues_list", responses=s.QueueSerializer(many=True))
    def get(self, request: Request) -> Response:
        queues = queues_for_annotator(user=request.user)
        return Response([_queue_data(q) for q in queues])


class QueueDetailApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_queue_detail", responses={200: s.QueueDetailSerializer, **_ERRORS}
    )
    def get(self, request: Request, queue_id: int) -> Response:
        queue = labeling_queue_for_labeling(queue_id=queue_id, user=request.user)
        data = _queue_data(queue)
        data["example_images"] = [
            {"name": img.name, "caption": img.caption, "url": example_image_url(img)}
            for img in queue.instruction_images.all()
        ]
        return Response(data)


class NextApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_next",
        request=s.NextRequestSerializer,
        responses={200: s.NextResponseSerializer, **_ERRORS},
        description="Lease up to `count` pairs to you (the ones you hold come first). Never a "
        "pair you judged, skipped or hold; calling again returns the same held pairs.",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        body = _body(request)
        result = pairs_next_for_client(
            user=request.user,
            queue_id=queue_id,
            count=body.get("count"),
            known=body.get("known"),
        )
        urls = ImageUrlMaker(user=request.user)
        return Response(
            {
                "items": [_item_data(item, urls) for item in result.items],
                "known_held": result.known_held,
            }
        )


def _judgment_data(result: SubmitResult) -> dict[str, Any]:
    j = result.judgment
    return {
        "judgment": {
            "pair": j.pair_id,
            "client_submission_id": j.client_submission_id,
            "choice": j.choice,
            "reason_tags": j.reason_tags,
            "duration_ms": j.duration_ms,
            "created_at": j.created_at,
        },
        "replayed": result.replayed,
        "feedback": result.feedback,
    }


class SubmitApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_submit",
        request=s.SubmitRequestSerializer,
        responses={
            201: s.SubmitResponseSerializer,
            200: OpenApiResponse(
                s.SubmitResponseSerializer,
                description="This client_submission_id was stored before: the stored answer.",
            ),
            **_ERRORS,
        },
        description="Answer a pair you hold. `choice` is the side as shown; it is mapped to "
        "the image through the stored presentation order. Retrying with the same "
        "client_submission_id never stores a second answer.",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        data = _body(request)
        result = judgment_submit(
            user=request.user,
            queue_id=queue_id,
            pair_id=data.get("pair"),
            client_submission_id=data.get("client_submission_id"),
            choice=data.get("choice"),
            reason_tags=data.get("reason_tags"),
            duration_ms=data.get("duration_ms"),
            criteria=data.get("criteria"),
        )
        code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
        return Response(_judgment_data(result), status=code)


class HeartbeatApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_heartbeat",
        request=s.HeartbeatRequestSerializer,
        responses={200: s.HeartbeatResponseSerializer, **_ERRORS},
        description="Renew your leases on the pairs on screen.",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        result = leases_heartbeat(
            user=request.user, queue_id=queue_id, pair_ids=_body(request).get("pairs")
        )
        return Response(
            {
                "renewed": [
                    {"pair": pair, "lease_expires_at": expires}
                    for pair, expires in sorted(result.renewed.items())
                ],
                "lost": result.lost,
            }
        )


class UndoApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_undo",
        request=s.UndoRequestSerializer,
        responses={200: s.ItemSerializer, **_ERRORS},
        description="Take back your last answer in this queue while its lease holds; the pair "
        "comes back (returned as `next` shows it).",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        body = s.UndoRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = judgment_undo(
            user=request.user,
            queue_id=queue_id,
            client_submission_id=body.validated_data["client_submission_id"],
        )
        return Response(_item_data(item, ImageUrlMaker(user=request.user)))


class ProgressApi(_LabelingApi):
    @extend_schema(
        operation_id="labeling_progress", responses={200: s.ProgressSerializer, **_ERRORS}
    )
    def get(self, request: Request, queue_id: int) -> Response:
        progress = annotator_progress(user=request.user, queue_id=queue_id)
        return Response(
            {
                "done_today": progress.done_today,
                "skipped_today": progress.skipped_today,
                "daily_target": progress.daily_target,
                "held": progress.held,
                "left_in_queue": progress.available,
                "left_in_queue_capped": progress.available_capped,
            }
        )
