"""Request and response shapes of the labeling API (explicit fields; also the OpenAPI schema).

Nothing here names a model, seed, generator config, prompt lineage, intended winner, gold
answer or anybody else's judgment: annotators see a prompt and two opaque image URLs.
"""

from rest_framework import serializers

from annotation.models import Judgment, LabelingQueue, Pair, PairBuild
from annotation.services.judgments import MAX_DURATION_MS, MAX_REASON_TAGS
from annotation.services.queues import (
    MAX_LEASE_SECONDS,
    MAX_OVERLAP,
    MAX_PREFETCH,
    MIN_LEASE_SECONDS,
)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code: invalid, not_found, conflict, ...")
    detail = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The input at fault, if one is.")


# --- annotators ---------------------------------------------------------------------------


class InstructionImageSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="Referenced in the markdown as ![caption](example:NAME)."
    )
    caption = serializers.CharField()
    url = serializers.CharField()


class CriterionSerializer(serializers.Serializer):
    name = serializers.CharField()
    question = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    instructions = serializers.CharField(help_text="Markdown.")
    prefetch = serializers.IntegerField()
    lease_seconds = serializers.IntegerField()
    criteria = CriterionSerializer(
        many=True,
        help_text="The questions asked per pair; empty: the one default question. The first "
        "is answered by `choice`, the others in submit's `criteria`.",
    )


class QueueDetailSerializer(QueueSerializer):
    example_images = InstructionImageSerializer(many=True)


class NextRequestSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PREFETCH,
        help_text="How many pairs to hold (those already held count); default: the queue's "
        "prefetch.",
    )
    known = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=100,
        help_text="Pairs the client already has: if still held they count towards `count` and "
        "come back in `known_held` instead of as whole items.",
    )


class PromptSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The prompt to judge the images against.")
    objects = serializers.ListField(child=serializers.DictField(), help_text="For highlighting.")
    relations = serializers.ListField(child=serializers.DictField())
    scene = serializers.CharField(allow_null=True)


class ImageSerializer(serializers.Serializer):
    url = serializers.CharField(
        help_text="Opaque: a presigned URL (S3) or this API's authenticated image view."
    )


class ItemSerializer(serializers.Serializer):
    pair = serializers.IntegerField()
    prompt = PromptSerializer()
    left = ImageSerializer()
    right = ImageSerializer()
    lease_expires_at = serializers.DateTimeField()


class NextResponseSerializer(serializers.Serializer):
    items = ItemSerializer(many=True, help_text="Held leases first; empty: nothing for you now.")
    known_held = serializers.ListField(
        child=serializers.IntegerField(), help_text="The `known` pairs you still hold."
    )


class SubmitRequestSerializer(serializers.Serializer):
    pair = serializers.IntegerField(min_value=1)
    client_submission_id = serializers.UUIDField(
        help_text="Made once per answer by the client; a retry with it returns the stored one."
    )
    choice = serializers.ChoiceField(
        choices=Judgment.Choice.choices, help_text="As shown on screen."
    )
    reason_tags = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=MAX_REASON_TAGS,
        required=False,
        help_text="KIND or KIND:REF, KIND in object, relation, attribute, count, quality, other "
        "(REF: an object id or relation index of the prompt).",
    )
    duration_ms = serializers.IntegerField(
        min_value=0, max_value=MAX_DURATION_MS, required=False, allow_null=True
    )
    criteria = serializers.DictField(
        child=serializers.ChoiceField(choices=["left", "right", "tie", "both_wrong"]),
        required=False,
        help_text="Answers to the queue's other criteria by name (its first criterion is "
        "`choice`), each side as shown.",
    )


class JudgmentSerializer(serializers.Serializer):
    pair = serializers.IntegerField()
    client_submission_id = serializers.UUIDField()
    choice = serializers.CharField()
    reason_tags = serializers.ListField(child=serializers.CharField())
    duration_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class SubmitResponseSerializer(serializers.Serializer):
    judgment = JudgmentSerializer()
    replayed = serializers.BooleanField(help_text="True: this submission was stored before.")
    feedback = serializers.CharField(
        allow_null=True,
        help_text="Null, except in a queue that gives feedback, after a missed pair whose "
        "answer is known: why the other image is right.",
    )


class HeartbeatRequestSerializer(serializers.Serializer):
    pairs = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=50
    )


class RenewedSerializer(serializers.Serializer):
    pair = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()


class HeartbeatResponseSerializer(serializers.Serializer):
    renewed = RenewedSerializer(many=True)
    lost = serializers.ListField(
        child=serializers.IntegerField(), help_text="Pairs you no longer hold: drop them."
    )


class UndoRequestSerializer(serializers.Serializer):
    client_submission_id = serializers.UUIDField()


class ProgressSerializer(serializers.Serializer):
    done_today = serializers.IntegerField(help_text="Your answers today (skips included).")
    skipped_today = serializers.IntegerField()
    daily_target = serializers.IntegerField(allow_null=True)
    held = serializers.IntegerField(help_text="Pairs leased to you now.")
    left_in_queue = serializers.IntegerField(
        help_text="Pairs the queue can still lease out (counted up to a cap)."
    )
    left_in_queue_capped = serializers.BooleanField()


# --- leads --------------------------------------------------------------------------------


class LeadQueueSerializer(serializers.ModelSerializer):
    # Plain strings: other apps' serializers have `status` fields with other choices.
    status = serializers.CharField(read_only=True, help_text="active | paused")
    allowed_groups = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    allowed_users = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = LabelingQueue
        fields = [
            "id",
            "name",
            "instructions",
            "overlap",
            "status",
            "lease_seconds",
            "prefetch",
            "allowed_groups",
            "allowed_users",
            "created_at",
            "kind",
            "criteria",
            "gold_rate",
            "gold_feedback",
            "qualification_gold",
            "qualification_accuracy",
            "pause_accuracy",
            "pause_min_gold",
            "speed_floor_ms",
            "overlap_max",
            "adaptive_margin",
            "review_queue",
        ]
        read_only_fields = fields


class LeadQueueCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    overlap = serializers.IntegerField(min_value=1, max_value=MAX_OVERLAP, default=3)
    lease_seconds = serializers.IntegerField(
        min_value=MIN_LEASE_SECONDS, max_value=MAX_LEASE_SECONDS, default=600
    )
    prefetch = serializers.IntegerField(min_value=1, max_value=MAX_PREFETCH, default=3)
    allowed_groups = serializers.ListField(
        child=serializers.CharField(max_length=150),
        required=False,
        help_text="Groups by name. Left out with no allowed_usernames: every annotator (the "
        "annotator group). A queue with no group and no user would be invisible to everyone: "
        "refused with a 400 naming allowed_groups.",
    )
    allowed_usernames = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, default=list
    )
    quality = serializers.DictField(
        required=False,
        default=dict,
        help_text="Quality control: gold_rate (0 to 0.5), gold_feedback, qualification_gold, "
        "qualification_accuracy, pause_accuracy (0: never auto-pause), pause_min_gold, "
        "speed_floor_ms, overlap_max (adaptive overlap above `overlap`), adaptive_margin, "
        "review_queue (id of a queue of kind review), criteria ([{name, question}]), kind "
        "(labeling | review). A bad one is a 400 naming quality.<key>.",
    )


class PairBuildRequestSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=Pair.Kind.choices)
    options = serializers.DictField(
        required=False,
        default=dict,
        help_text="sample_per_prompt, prefer_across_configs, counterfactual_match "
        "(config_seed | config), priority, judgments_needed, seed, make_thumbnails.",
    )


class PairBuildSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued | running | done | failed")
    kind = serializers.CharField(read_only=True, help_text="same_prompt | counterfactual")

    class Meta:
        model = PairBuild
        fields = [
            "id",
            "queue",
            "campaign",
            "kind",
            "options",
            "status",
            "pairs_created",
            "pairs_existing",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
