"""Leads' quality-control endpoints (issue 16): a queue's quality summary, its ambiguous and
disputed pairs, a pair's drill-down with every vote, pausing and resuming an annotator in a
queue, gold pairs (mark, unmark, confirm) and sending a pair to review.

Leads and admins only (config/permissions.py): annotators get a 403 and never learn which
pairs are gold. Reads: annotation/selectors_quality.py; writes: annotation/services/quality.py.
"""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import AnnotatorProfile, LabelingQueue, Pair
from annotation.selectors_quality import (
    PAIR_STATES,
    PairDetail,
    annotators_overall_page,
    pair_detail,
    pair_entropy,
    pair_vote_counts,
    pairs_in_state,
    queue_quality,
)
from annotation.serializers import ErrorSerializer
from annotation.services.quality import (
    annotator_queue_pause,
    annotator_queue_resume,
    pair_gold_mark,
    pair_gold_unmark,
    pair_review_send,
    pairs_gold_confirm,
)
from config.errors import NotFound, ValidationFailed
from config.input_checks import BIGINT_MAX

_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input; `field` names it."),
    403: OpenApiResponse(ErrorSerializer, description="Leads only."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown queue, pair or annotator."),
}
_CONFLICT = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="not_paused, already_paused, not_gold, not_proposed, in_review, "
        "no_review_queue, review_copy.",
    )
}
# Plain strings in the schema (the same names carry other choice sets elsewhere in the API).
_SIDE = "a (the pair's first candidate) or b (its second); null when none."
_STATUS = "active, qualifying, paused or disqualified."
_RESOLUTION = "'' (collecting votes), confident or ambiguous."
_REVIEW = "'' (not disputed), pending (in review) or settled."
_GOLD_SOURCE = "'', procedural, confirmed, lead or proposed."


# --- shapes -----------------------------------------------------------------------------------


class ProportionSerializer(serializers.Serializer):
    hits = serializers.IntegerField()
    trials = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="Wilson 95% interval, lower bound.")
    high = serializers.FloatField(allow_null=True, help_text="Wilson 95% interval, upper bound.")


class AnnotatorQualitySerializer(serializers.Serializer):
    annotator = serializers.IntegerField(source="annotator_id", allow_null=True)
    username = serializers.CharField()
    status = serializers.CharField(help_text=_STATUS)
    reason = serializers.CharField(allow_blank=True)
    changed_at = serializers.DateTimeField(allow_null=True)
    trust = serializers.FloatField(allow_null=True)
    answers = serializers.IntegerField(help_text="Skips included.")
    gold = ProportionSerializer(help_text="Gold answers (no skips) that picked the gold winner.")
    peers = ProportionSerializer(
        help_text="Non-skip answers on non-gold pairs with >= 2 other votes that match the "
        "others' most common answer (leave-one-out; pairs where the others tie not scored)."
    )
    left = ProportionSerializer(help_text="Left picks among left/right answers.")
    left_p_value = serializers.FloatField(
        help_text="Exact two-sided binomial test of the left picks against 0.5."
    )
    ties = serializers.IntegerField()
    both_wrong = serializers.IntegerField()
    skips = serializers.IntegerField()
    tie_rate = serializers.FloatField(allow_null=True)
    both_wrong_rate = serializers.FloatField(allow_null=True)
    skip_rate = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    fast = ProportionSerializer(
        help_text="Timed non-skip answers faster than the queue's speed floor."
    )
    flags = serializers.ListField(child=serializers.ChoiceField(choices=["fast", "position_bias"]))
    last_at = serializers.DateTimeField(allow_null=True)


class AgreementSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The group: a kind, relation, config or day.")
    units = serializers.IntegerField(help_text="Non-gold pairs with at least two votes.")
    votes = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, nominal.")
    kappa = serializers.FloatField(
        allow_null=True, help_text="Fleiss' kappa; null unless every pair has as many votes."
    )
    mean_entropy = serializers.FloatField(allow_null=True, help_text="Bits per pair.")


class QueueRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class QualitySettingsSerializer(serializers.Serializer):
    gold_rate = serializers.FloatField()
    pause_accuracy = serializers.FloatField()
    pause_min_gold = serializers.IntegerField()
    speed_floor_ms = serializers.IntegerField()
    overlap = serializers.IntegerField()
    overlap_max = serializers.IntegerField(allow_null=True)


class PairStateCountsSerializer(serializers.Serializer):
    ambiguous = serializers.IntegerField()
    disputed = serializers.IntegerField()
    in_review = serializers.IntegerField()
    settled = serializers.IntegerField()


class QueueQualitySerializer(serializers.Serializer):
    queue = QueueRefSerializer()
    settings = QualitySettingsSerializer(source="queue")
    everyone = AnnotatorQualitySerializer()
    annotators = AnnotatorQualitySerializer(many=True)
    annotators_total = serializers.IntegerField()
    agreement = AgreementSerializer()
    by_kind = AgreementSerializer(many=True)
    by_relation = AgreementSerializer(many=True)
    by_config = AgreementSerializer(many=True)
    trend = AgreementSerializer(many=True, help_text="Per UTC day of the pairs' last vote.")
    pairs = PairStateCountsSerializer()


class VoteCountsSerializer(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    tie = serializers.IntegerField()
    both_wrong = serializers.IntegerField()
    skip = serializers.IntegerField()


class PairRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="same_prompt or counterfactual.")
    prompt = serializers.CharField()
    resolution = serializers.CharField(allow_blank=True, help_text=_RESOLUTION)
    review = serializers.CharField(allow_blank=True, help_text=_REVIEW)
    intended_winner = serializers.CharField(allow_null=True, help_text=_SIDE)
    votes = VoteCountsSerializer()
    entropy = serializers.FloatField(help_text="Of the non-skip votes, in bits.")


class PairCandidateSerializer(serializers.Serializer):
    side = serializers.CharField(help_text=_SIDE)
    id = serializers.IntegerField()
    image_url = serializers.CharField()
    config = serializers.CharField()
    seed = serializers.IntegerField()
    prompt = serializers.CharField(help_text="The prompt this image was generated from.")


class GoldSerializer(serializers.Serializer):
    is_gold = serializers.BooleanField()
    source = serializers.CharField(allow_blank=True, help_text=_GOLD_SOURCE)
    winner = serializers.CharField(allow_null=True, help_text=_SIDE)
    explanation = serializers.CharField(allow_blank=True)


class SettledSerializer(serializers.Serializer):
    choice = serializers.CharField(allow_blank=True)
    winner = serializers.CharField(allow_null=True, help_text=_SIDE)
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)


class VoteSerializer(serializers.Serializer):
    annotator = serializers.IntegerField(source="annotator_id")
    username = serializers.CharField()
    choice = serializers.CharField()
    category = serializers.ChoiceField(
        choices=["a", "b", "tie", "both_wrong"], allow_null=True, help_text="Null: a skip."
    )
    shown_left = serializers.CharField(help_text="Which candidate was shown on the left: a or b.")
    duration_ms = serializers.IntegerField(allow_null=True)
    reason_tags = serializers.ListField(child=serializers.CharField())
    criteria_choices = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class ReviewCopySerializer(serializers.Serializer):
    pair = serializers.IntegerField()
    queue = QueueRefSerializer()
    judgments = serializers.IntegerField()


class PairDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue = QueueRefSerializer()
    kind = serializers.CharField(help_text="same_prompt or counterfactual.")
    prompt = serializers.CharField()
    candidates = PairCandidateSerializer(many=True)
    intended_winner = serializers.CharField(allow_null=True, help_text=_SIDE)
    gold = GoldSerializer()
    resolution = serializers.CharField(allow_blank=True, help_text=_RESOLUTION)
    review = serializers.CharField(allow_blank=True, help_text=_REVIEW)
    settled = SettledSerializer()
    counts = VoteCountsSerializer()
    entropy = serializers.FloatField()
    votes = VoteSerializer(many=True)
    votes_total = serializers.IntegerField()
    reviews = ReviewCopySerializer(many=True)


class AnnotatorStateSerializer(serializers.Serializer):
    queue = serializers.IntegerField(source="queue_id")
    annotator = serializers.IntegerField(source="annotator_id")
    status = serializers.CharField(help_text=_STATUS)
    reason = serializers.CharField(allow_blank=True)
    gold_answers = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    trust = serializers.FloatField(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)


class PauseRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=250, required=False, allow_blank=True, default="")


class GoldMarkRequestSerializer(serializers.Serializer):
    winner = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, help_text="The id of one of the pair's candidates."
    )
    explanation = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="",
        help_text="Shown to an annotator who misses it, if the queue gives feedback.",
    )  # fmt: skip


class GoldConfirmRequestSerializer(serializers.Serializer):
    pairs = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        min_length=1,
        max_length=1000,
        help_text="Proposed gold pairs of this queue; their intended winner becomes the answer.",
    )


class GoldConfirmResponseSerializer(serializers.Serializer):
    confirmed = serializers.IntegerField()


# --- data ---------------------------------------------------------------------------------------


def _side(pair: Pair, candidate_id: int | None) -> str | None:
    if candidate_id is None:
        return None
    return "a" if candidate_id == pair.candidate_a_id else "b"


def pair_row_data(pair: Pair) -> dict[str, Any]:
    """A listed pair (from selectors_quality.pairs_in_state, which counts its votes)."""
    counts = pair_vote_counts(pair)
    return {
        "id": pair.pk,
        "kind": pair.kind,
        "prompt": pair.prompt.text,
        "resolution": pair.resolution,
        "review": pair.review,
        "intended_winner": _side(pair, pair.intended_winner_id),
        "votes": counts,
        "entropy": pair_entropy(counts),
    }


def candidate_image_url(candidate_id: int) -> str:
    return reverse("api:generation:candidate-image", kwargs={"candidate_id": candidate_id})


def pair_detail_data(detail: PairDetail) -> dict[str, Any]:
    pair = detail.pair
    return {
        "id": pair.pk,
        "queue": {"id": pair.queue_id, "name": pair.queue.name},
        "kind": pair.kind,
        "prompt": pair.prompt.text,
        "candidates": [
            {
                "side": side,
                "id": candidate.pk,
                "image_url": candidate_image_url(candidate.pk),
                "config": candidate.config.name,
                "seed": candidate.seed,
                "prompt": candidate.prompt.text,
            }
            for side, candidate in (("a", pair.candidate_a), ("b", pair.candidate_b))
        ],
        "intended_winner": _side(pair, pair.intended_winner_id),
        "gold": {
            "is_gold": pair.is_gold,
            "source": pair.gold_source,
            "winner": _side(pair, pair.gold_winner_id) if pair.is_gold else None,
            "explanation": pair.gold_explanation,
        },
        "resolution": pair.resolution,
        "review": pair.review,
        "settled": {
            "choice": pair.settled_choice,
            "winner": _side(pair, pair.settled_winner_id),
            "by": pair.settled_by.get_username() if pair.settled_by else None,
            "at": pair.settled_at,
        },
        "counts": detail.counts,
        "entropy": detail.entropy,
        "votes": detail.votes,
        "votes_total": detail.votes_total,
        "reviews": [
            {
                "pair": copy.pk,
                "queue": {"id": copy.queue_id, "name": copy.queue.name},
                "judgments": copy.judgments_count,
            }
            for copy in detail.reviews
        ],
    }


def _pair_response(pair_id: int) -> Response:
    return Response(PairDetailSerializer(pair_detail_data(pair_detail(pair_id=pair_id))).data)


def _queue_or_404(queue_id: int) -> None:
    if not LabelingQueue.objects.filter(pk=queue_id).exists():
        raise NotFound(f"labeling queue {queue_id} does not exist", field="queue")


def _body(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    if not hasattr(request.data, "get"):
        raise ValidationFailed("the request body must be a JSON object", field="body")
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


# --- views --------------------------------------------------------------------------------------


class QueueQualityApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_queue_quality",
        responses={200: QueueQualitySerializer, **_ERRORS},
        description="Every annotator's figures in the queue, everyone's together, agreement "
        "(overall, per pair kind, relation, generator config and day) and the counts of pairs "
        "that need a lead's eye.",
    )
    def get(self, request: Request, queue_id: int) -> Response:
        quality = queue_quality(queue_id=queue_id)
        data = {
            "queue": quality.queue,
            "everyone": quality.everyone,
            "annotators": quality.annotators,
            "annotators_total": quality.annotators_total,
            "agreement": quality.agreement,
            "by_kind": quality.by_kind,
            "by_relation": quality.by_relation,
            "by_config": quality.by_config,
            "trend": quality.trend,
            "pairs": {
                "ambiguous": quality.ambiguous,
                "disputed": quality.disputed,
                "in_review": quality.in_review,
                "settled": quality.settled,
            },
        }
        return Response(QueueQualitySerializer(data).data)


class QueueQualityPairsApi(ListAPIView):
    serializer_class = PairRowSerializer
    queryset = Pair.objects.none()  # for the schema; the rows come from pairs_in_state

    @extend_schema(
        operation_id="labeling_manage_queue_quality_pairs",
        parameters=[
            OpenApiParameter(
                "state",
                str,
                enum=list(PAIR_STATES),
                required=True,
                description="ambiguous: split at the maximum votes; disputed: in review or "
                "settled there, or a counterfactual pair whose majority goes against the "
                "intended winner. Gold pairs are never listed.",
            )
        ],
        responses={200: PairRowSerializer(many=True), **_ERRORS},
    )
    def get(self, request: Request, queue_id: int) -> Response:
        state = request.query_params.get("state", "")
        if state not in PAIR_STATES:
            raise ValidationFailed(f"state must be one of {', '.join(PAIR_STATES)}", field="state")
        _queue_or_404(queue_id)
        page = self.paginate_queryset(pairs_in_state(queue_id=queue_id, state=state))
        rows = [pair_row_data(pair) for pair in page]
        return self.get_paginated_response(PairRowSerializer(rows, many=True).data)


class AnnotatorsQualityApi(ListAPIView):
    serializer_class = AnnotatorQualitySerializer
    queryset = AnnotatorProfile.objects.none()  # for the schema; see annotators_overall_page

    @extend_schema(
        operation_id="labeling_manage_annotators_quality",
        responses={200: AnnotatorQualitySerializer(many=True), **_ERRORS},
        description="Every annotator (by username) over every queue; trust is the gold "
        "posterior over all their gold answers.",
    )
    def get(self, request: Request) -> Response:
        paginator = self.paginator
        limit = paginator.get_limit(request)
        offset = paginator.get_offset(request)
        total, rows = annotators_overall_page(offset=offset, limit=limit)
        paginator.count, paginator.limit, paginator.offset = total, limit, offset
        paginator.request = request
        return paginator.get_paginated_response(AnnotatorQualitySerializer(rows, many=True).data)


class PairDetailApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_pair_detail",
        responses={200: PairDetailSerializer, **_ERRORS},
        description="A pair with its images, gold and review state and every vote with its "
        "annotator.",
    )
    def get(self, request: Request, pair_id: int) -> Response:
        return _pair_response(pair_id)


class AnnotatorResumeApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_annotator_resume",
        request=None,
        responses={200: AnnotatorStateSerializer, **_ERRORS, **_CONFLICT},
        description="Serve the queue again to a paused or disqualified annotator.",
    )
    def post(self, request: Request, queue_id: int, user_id: int) -> Response:
        state = annotator_queue_resume(queue_id=queue_id, annotator_id=user_id, by=request.user)
        return Response(AnnotatorStateSerializer(state).data)


class AnnotatorPauseApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_annotator_pause",
        request=PauseRequestSerializer,
        responses={200: AnnotatorStateSerializer, **_ERRORS, **_CONFLICT},
        description="Stop serving the queue to an annotator (their answers stay).",
    )
    def post(self, request: Request, queue_id: int, user_id: int) -> Response:
        body = _body(PauseRequestSerializer, request)
        state = annotator_queue_pause(
            queue_id=queue_id, annotator_id=user_id, by=request.user, reason=body["reason"]
        )
        return Response(AnnotatorStateSerializer(state).data)


class PairGoldApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_pair_gold_mark",
        request=GoldMarkRequestSerializer,
        responses={200: PairDetailSerializer, **_ERRORS, **_CONFLICT},
        description="Make the pair gold with its answer.",
    )
    def post(self, request: Request, pair_id: int) -> Response:
        body = _body(GoldMarkRequestSerializer, request)
        pair_gold_mark(
            pair_id=pair_id,
            winner_id=body["winner"],
            explanation=body["explanation"],
            by=request.user,
        )
        return _pair_response(pair_id)

    @extend_schema(
        operation_id="labeling_manage_pair_gold_unmark",
        responses={200: PairDetailSerializer, **_ERRORS, **_CONFLICT},
        description="The pair is a regular pair again.",
    )
    def delete(self, request: Request, pair_id: int) -> Response:
        pair_gold_unmark(pair_id=pair_id, by=request.user)
        return _pair_response(pair_id)


class GoldConfirmApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_gold_confirm",
        request=GoldConfirmRequestSerializer,
        responses={200: GoldConfirmResponseSerializer, **_ERRORS, **_CONFLICT},
        description="Confirm proposed gold pairs (all or none).",
    )
    def post(self, request: Request, queue_id: int) -> Response:
        body = _body(GoldConfirmRequestSerializer, request)
        _queue_or_404(queue_id)
        confirmed = pairs_gold_confirm(queue_id=queue_id, pair_ids=body["pairs"], by=request.user)
        return Response({"confirmed": confirmed})


class PairReviewApi(APIView):
    @extend_schema(
        operation_id="labeling_manage_pair_review",
        request=None,
        responses={200: PairDetailSerializer, **_ERRORS, **_CONFLICT},
        description="Send the pair to its queue's review queue.",
    )
    def post(self, request: Request, pair_id: int) -> Response:
        pair_review_send(pair_id=pair_id, by=request.user)
        return _pair_response(pair_id)
