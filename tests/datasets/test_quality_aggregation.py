"""Versions built with quality control: the chosen aggregator and criterion, settled and gold
answers, review copies, paused and untrusted annotators, confidence thresholds, and what the
frozen version and its exports say about them."""

import io
import json
import threading
import uuid

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import storages

from annotation.models import AnnotatorProfile, AnnotatorQueueState, Judgment, LabelingQueue, Pair
from config.errors import ValidationFailed
from tests.datasets.factories import judge_bulk, records_of, version_frozen, world_build
from training_bridge.datasets.aggregation import label_models
from training_bridge.datasets.services.datasets import dataset_create, dataset_version_create
from training_bridge.datasets.services.exports import dataset_export_request, dataset_export_run
from training_bridge.datasets.services.freezing import dataset_version_freeze
from training_bridge.models import DatasetRecord, DatasetVersion

pytestmark = pytest.mark.django_db


def _records(version) -> dict[int, dict]:
    return {pair_id: json.loads(line) for pair_id, _, _, line in records_of(version)}


def _spammy_world(groups: int = 6):
    """Three careful annotators and two who always pick the left image (candidate a)."""
    world = world_build(groups=groups, annotators=5, store_images=False)

    def votes(pair):
        careful = "right" if pair.pk % 3 else "left"  # b on two pairs of three
        return [careful, careful, careful, "left", "left"]

    judge_bulk(world, votes)
    return world


def test_dawid_skene_freezes_to_the_same_hash_twice_and_the_manifest_says_how():
    world = _spammy_world()
    spec = {"queues": [world.queue.name], "aggregator": "dawid_skene"}

    first = version_frozen(dataset_name="ds", filter_spec=spec)
    second = version_frozen(dataset_name="ds", filter_spec=spec)

    assert first.content_hash == second.content_hash
    assert records_of(first) == records_of(second)
    assert first.aggregator == "dawid_skene"
    assert first.filter_spec["aggregator_options"] == {
        "n_iter": 100,
        "tie_rule": "tie",
        "tol": 1e-5,
    }
    manifest = first.manifest
    aggregator = manifest["aggregator"]
    assert {k: aggregator[k] for k in ("name", "options", "criterion")} == {
        "name": "dawid_skene",
        "options": {"n_iter": 100, "tie_rule": "tie", "tol": 1e-5},
        "criterion": None,
    }
    assert aggregator["library"]["name"] == "crowd-kit"
    assert aggregator["library"]["version"].startswith("1.")
    assert aggregator["fit"]["votes"] == 5 * len(world.pairs)
    assert set(aggregator["fit"]["annotator_accuracy"]) == {str(u.pk) for u in world.annotators}
    confidence = manifest["confidence"]
    assert sum(confidence["histogram"].values()) == first.record_count == len(world.pairs)
    assert confidence["settled"] == 0
    assert 0.5 <= confidence["min"] <= confidence["mean"] <= 1.0
    records = _records(first)
    # the careful three outvote the left-clickers wherever they disagree
    for pair in world.pairs:
        assert records[pair.pk]["label"] == ("b" if pair.pk % 3 else "a")
        assert records[pair.pk]["confidence"] > 0.5
    assert manifest["manifest_format"] == 2


def test_the_majority_vote_keeps_its_share_as_confidence_and_names_no_library():
    world = _spammy_world(groups=1)
    version = version_frozen(dataset_name="plain", filter_spec={"queues": [world.queue.pk]})
    assert version.manifest["aggregator"] == {
        "name": "majority",
        "options": {"tie_rule": "tie"},
        "criterion": None,
        "library": None,
        "fit": {},
    }
    for pair_id, record in _records(version).items():
        assert record["confidence"] == record["agreement"] == (3 / 5 if pair_id % 3 else 1.0)


def test_creating_a_version_with_a_label_model_checks_the_selection_without_fitting(monkeypatch):
    world = _spammy_world(groups=1)

    def refuse(self, table):
        raise AssertionError("fitted in the request")

    monkeypatch.setattr(label_models.DawidSkeneAggregator, "fit", refuse)
    dataset = dataset_create(name="ds")
    version = dataset_version_create(
        dataset_id=dataset.pk,
        filter_spec={"queues": [world.queue.pk], "aggregator": "dawid_skene"},
    )
    assert version.status == DatasetVersion.Status.DRAFT
    assert DatasetRecord.objects.count() == 0


def test_a_freeze_whose_confidences_all_fall_below_the_threshold_fails_naming_the_key():
    world = world_build(groups=1, annotators=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "right"])
    dataset = dataset_create(name="ds")
    version = dataset_version_create(
        dataset_id=dataset.pk,
        filter_spec={
            "queues": [world.queue.pk],
            "aggregator": "bradley_terry",
            "min_confidence": 0.9,
        },
    )
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_freeze(version_id=version.pk)
    assert caught.value.field == "filter_spec.min_confidence"
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.FAILED
    assert "have a confidence below 0.9" in version.error
    assert DatasetRecord.objects.filter(version=version).count() == 0


def test_a_selection_a_label_model_cannot_fit_fails_to_freeze_naming_the_aggregator(monkeypatch):
    world = _spammy_world(groups=1)
    monkeypatch.setattr(label_models, "GLAD_MAX_VOTES", 5)
    dataset = dataset_create(name="glad")
    version = dataset_version_create(
        dataset_id=dataset.pk, filter_spec={"queues": [world.queue.pk], "aggregator": "glad"}
    )
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_freeze(version_id=version.pk)
    assert caught.value.field == "filter_spec.aggregator"
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.FAILED
    assert "glad fits at most 5 votes" in version.error


@pytest.mark.parametrize("aggregator", ["majority", "dawid_skene", "bradley_terry"])
def test_a_settled_answer_wins_over_the_votes_with_confidence_one(aggregator):
    world = world_build(groups=1, annotators=3, store_images=False)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    disputed, tied = world.pairs[0], world.pairs[1]
    Pair.objects.filter(pk=disputed.pk).update(
        review="settled", settled_choice="winner", settled_winner=disputed.candidate_b_id
    )
    Pair.objects.filter(pk=tied.pk).update(review="settled", settled_choice="tie")

    version = version_frozen(
        dataset_name="settled",
        filter_spec={
            "queues": [world.queue.pk],
            "aggregator": aggregator,
            "min_agreement": 0.9,  # the votes' 2/3 would drop every unsettled pair
        },
    )

    records = _records(version)
    assert set(records) == {disputed.pk, tied.pk}
    assert (records[disputed.pk]["label"], records[disputed.pk]["confidence"]) == ("b", 1.0)
    assert records[disputed.pk]["settled"] is True
    assert records[disputed.pk]["votes"]["a"] == 2
    assert (records[tied.pk]["label"], records[tied.pk]["settled"]) == ("tie", True)
    assert version.manifest["confidence"]["settled"] == 2


def test_review_copies_of_disputed_pairs_never_become_records():
    world = world_build(groups=1, annotators=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "left"])
    review = LabelingQueue.objects.create(name="review", kind="review")
    original = world.pairs[0]
    copy = Pair.objects.create(
        queue=review,
        candidate_a_id=original.candidate_a_id,
        candidate_b_id=original.candidate_b_id,
        kind=original.kind,
        prompt_id=original.prompt_id,
        intended_winner_id=original.intended_winner_id,
        review_of=original,
    )
    Judgment.objects.create(
        pair=copy,
        annotator=world.annotators[0],
        client_submission_id=uuid.uuid4(),
        left_candidate_id=copy.candidate_a_id,
        choice="right",
        winner_id=copy.candidate_b_id,
    )

    version = version_frozen(dataset_name="all", filter_spec={})

    assert {pair_id for pair_id, _, _, _ in records_of(version)} == {p.pk for p in world.pairs}


def test_ambiguous_pairs_are_left_out_when_asked_unless_settled():
    world = world_build(groups=1, annotators=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "left"])
    ambiguous, settled = world.pairs[0], world.pairs[1]
    Pair.objects.filter(pk__in=[ambiguous.pk, settled.pk]).update(resolution="ambiguous")
    Pair.objects.filter(pk=settled.pk).update(
        review="settled", settled_choice="winner", settled_winner=settled.candidate_a_id
    )

    version = version_frozen(
        dataset_name="clear", filter_spec={"queues": [world.queue.pk], "exclude_ambiguous": True}
    )

    assert ambiguous.pk not in _records(version)
    assert settled.pk in _records(version)
    assert version.manifest["selection"]["dropped"]["exclude_ambiguous"] == 1


def test_min_confidence_drops_the_records_the_aggregator_is_unsure_of():
    world = world_build(groups=1, annotators=3, store_images=False)
    unanimous = {world.pairs[0].pk, world.pairs[1].pk}
    judge_bulk(
        world,
        lambda pair: ["left"] * 3 if pair.pk in unanimous else ["left", "left", "right"],
    )
    version = version_frozen(
        dataset_name="sure", filter_spec={"queues": [world.queue.pk], "min_confidence": 0.8}
    )
    assert set(_records(version)) == unanimous
    assert version.manifest["selection"]["dropped"]["min_confidence"] == 2


def test_paused_and_disqualified_annotators_votes_are_left_out_when_asked():
    world = world_build(groups=1, annotators=3, store_images=False)
    judge_bulk(world, lambda pair: ["left", "right", "right"])
    careful, paused, failed = world.annotators
    AnnotatorQueueState.objects.create(annotator=paused, queue=world.queue, status="paused")
    AnnotatorQueueState.objects.create(annotator=failed, queue=world.queue, status="disqualified")
    other_queue = LabelingQueue.objects.create(name="elsewhere")
    AnnotatorQueueState.objects.create(annotator=careful, queue=other_queue, status="paused")

    everyone = version_frozen(dataset_name="all", filter_spec={"queues": [world.queue.pk]})
    active = version_frozen(
        dataset_name="active", filter_spec={"queues": [world.queue.pk], "exclude_paused": True}
    )

    assert {r["label"] for r in _records(everyone).values()} == {"b"}
    assert {r["label"] for r in _records(active).values()} == {"a"}
    assert {tuple(r["annotator_ids"]) for r in _records(active).values()} == {(careful.pk,)}
    assert active.filter_spec["exclude_paused"] is True


def test_trust_in_the_queue_decides_the_quality_filter_and_the_trust_weighted_labels():
    world = world_build(groups=1, annotators=3, store_images=False)
    judge_bulk(world, lambda pair: ["left", "right", "right"])
    trusted, sloppy, unknown = world.annotators
    # the queue's gold posterior counts before the overall score
    AnnotatorQueueState.objects.create(annotator=trusted, queue=world.queue, trust=0.95)
    AnnotatorQueueState.objects.create(annotator=sloppy, queue=world.queue, trust=0.3)
    AnnotatorProfile.objects.filter(user=sloppy).update(quality_score=0.99)

    quality = version_frozen(
        dataset_name="quality",
        filter_spec={
            "queues": [world.queue.pk],
            "annotators": {"mode": "quality", "min_quality": 0.9},
        },
    )
    weighted = version_frozen(
        dataset_name="weighted",
        filter_spec={"queues": [world.queue.pk], "aggregator": "trust_weighted"},
    )

    assert {tuple(r["annotator_ids"]) for r in _records(quality).values()} == {(trusted.pk,)}
    for record in _records(weighted).values():
        # a: 0.95; b: 0.3 + 0.5 (the unknown annotator weighs the default)
        assert record["label"] == "a"
        assert record["confidence"] == pytest.approx(0.95 / 1.75)
    assert unknown.pk in _records(weighted)[world.pairs[0].pk]["annotator_ids"]


def _two_criteria_world():
    world = world_build(groups=1, annotators=2, store_images=False)
    LabelingQueue.objects.filter(pk=world.queue.pk).update(
        criteria=[
            {"name": "spatial", "question": "Which follows the layout?"},
            {"name": "overall", "question": "Which do you prefer?"},
        ]
    )
    for pair in world.pairs:
        for index, annotator in enumerate(world.annotators):
            # the first annotator sees candidate b on the left
            left, right = (
                (pair.candidate_b_id, pair.candidate_a_id)
                if index == 0
                else (pair.candidate_a_id, pair.candidate_b_id)
            )
            Judgment.objects.create(
                pair=pair,
                annotator=annotator,
                client_submission_id=uuid.uuid4(),
                left_candidate_id=left,
                choice="right",  # spatial: candidate a for the first, b for the second
                winner_id=right,
                criteria_choices={"overall": "left"} if index == 0 else {"overall": "right"},
            )
    return world


def test_a_version_is_built_from_the_criterion_it_names():
    world = _two_criteria_world()

    spatial = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.pk]})
    named = version_frozen(
        dataset_name="spatial-named",
        filter_spec={"queues": [world.queue.pk], "criterion": "spatial"},
    )
    overall = version_frozen(
        dataset_name="overall", filter_spec={"queues": [world.queue.pk], "criterion": "overall"}
    )

    # spatial: the first says a (right, with b on the left), the second b: a tie
    assert {(r["votes"]["a"], r["votes"]["b"]) for r in _records(spatial).values()} == {(1, 1)}
    assert named.content_hash == spatial.content_hash
    # overall: both prefer candidate b (left for the first, right for the second)
    assert {r["label"] for r in _records(overall).values()} == {"b"}
    assert {r["votes"]["b"] for r in _records(overall).values()} == {2}
    assert overall.filter_spec["criterion"] == "overall"
    assert overall.manifest["aggregator"]["criterion"] == "overall"


@pytest.mark.parametrize(
    ("criterion", "queues", "message"),
    [
        ("style", True, "queue '{queue}' asks no criterion 'style' (it asks: spatial, overall)"),
        ("style", False, "no labeling queue asks a criterion 'style'"),
    ],
)
def test_a_criterion_no_queue_asks_is_refused_naming_the_key(criterion, queues, message):
    world = _two_criteria_world()
    dataset = dataset_create(name="ds")
    spec = {"criterion": criterion, **({"queues": [world.queue.pk]} if queues else {})}
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_create(dataset_id=dataset.pk, filter_spec=spec)
    assert caught.value.field == "filter_spec.criterion"
    assert caught.value.detail == message.format(queue=world.queue.name)
    assert DatasetVersion.objects.count() == 0


def test_a_settled_answer_belongs_to_the_primary_criterion_only():
    world = _two_criteria_world()
    pair = world.pairs[0]
    Pair.objects.filter(pk=pair.pk).update(
        review="settled", settled_choice="winner", settled_winner=pair.candidate_a_id
    )
    overall = version_frozen(
        dataset_name="overall", filter_spec={"queues": [world.queue.pk], "criterion": "overall"}
    )
    assert (_records(overall)[pair.pk]["label"], _records(overall)[pair.pk]["settled"]) == (
        "b",
        False,
    )


def _export_files(version, format: str) -> dict[str, bytes]:
    export = dataset_export_run(
        export_id=dataset_export_request(
            version_id=version.pk, format=format, include_images=False
        ).pk
    )
    return {
        a["name"]: storages["default"].open(a["key"], "rb").read()
        for a in export.artifacts
        if a["name"] not in ("README.md", "votes.parquet")
    }


def test_every_export_carries_each_records_confidence():
    world = world_build(groups=3, store_images=False)
    judge_bulk(world, lambda pair: ["left", "left", "right" if pair.pk % 2 else "left"])
    version = version_frozen(
        dataset_name="bt",
        filter_spec={"queues": [world.queue.pk], "aggregator": "bradley_terry"},
        split_spec={"ratios": {"train": 1.0}},
    )
    records = _records(version)
    confidence = {pair_id: record["confidence"] for pair_id, record in records.items()}
    assert len(set(confidence.values())) > 1

    (jsonl,) = _export_files(version, "jsonl").values()
    lines = [json.loads(line) for line in jsonl.decode().splitlines()]
    assert {r["pair_id"]: r["confidence"] for r in lines} == confidence

    (parquet,) = _export_files(version, "parquet").values()
    table = pq.read_table(io.BytesIO(parquet))
    assert dict(
        zip(table["pair_id"].to_pylist(), table["confidence"].to_pylist(), strict=True)
    ) == (confidence)

    (hps,) = _export_files(version, "hps").values()
    by_paths = {
        (
            r["prompt"]["text"],
            r["candidates"][r["label"] == "b"]["key"],
            r["candidates"][r["label"] == "a"]["key"],
        ): r["confidence"]
        for r in records.values()
    }
    items = json.loads(hps)
    assert len(items) == len(records) == len(by_paths)
    for item in items:
        assert item["confidence"] == by_paths[(item["prompt"], item["path1"], item["path2"])]


@pytest.mark.django_db(transaction=True)
def test_a_long_fit_keeps_the_freezes_heartbeat_going(monkeypatch, settings):
    """A label model fits in one library call before any record is written: the freeze beats
    from a thread meanwhile, or the recovery sweep would take it over."""
    settings.RECOVERY_STALE_SECONDS = 2  # a beat every half second
    world = _spammy_world(groups=1)
    dataset = dataset_create(name="ds")
    version = dataset_version_create(
        dataset_id=dataset.pk,
        filter_spec={"queues": [world.queue.pk], "aggregator": "dawid_skene"},
    )
    fit = label_models.DawidSkeneAggregator.fit
    beats = []

    def slow_fit(self, table):
        claimed = DatasetVersion.objects.get(pk=version.pk).freeze_heartbeat_at
        for _ in range(200):  # until the heartbeat moves (at most 20 s)
            beat = DatasetVersion.objects.get(pk=version.pk).freeze_heartbeat_at
            if beat != claimed:
                beats.append((claimed, beat))
                break
            threading.Event().wait(0.1)
        return fit(self, table)

    monkeypatch.setattr(label_models.DawidSkeneAggregator, "fit", slow_fit)
    frozen = dataset_version_freeze(version_id=version.pk)

    assert frozen.status == DatasetVersion.Status.FROZEN
    assert len(beats) == 1 and beats[0][1] > beats[0][0]


def test_a_dawid_skene_fit_gives_each_annotator_a_model_trust_that_trust_weighting_uses():
    # Annotators without a single gold answer: the aggregation model's accuracy estimate is
    # their trust (the second source after gold), and the trust-weighted vote reads it.
    world = _spammy_world()
    version = version_frozen(
        dataset_name="ds-trust",
        filter_spec={"queues": [world.queue.pk], "aggregator": "dawid_skene"},
    )
    accuracy = version.manifest["aggregator"]["fit"]["annotator_accuracy"]
    careful, clickers = world.annotators[:3], world.annotators[3:]
    profiles = {p.user_id: p for p in AnnotatorProfile.objects.all()}
    for user in world.annotators:
        assert profiles[user.pk].model_score == pytest.approx(accuracy[str(user.pk)])
        assert profiles[user.pk].model_score_version == version.pk
    assert min(profiles[u.pk].model_score for u in careful) > max(
        profiles[u.pk].model_score for u in clickers
    )
    from training_bridge.datasets.selectors.votes import trust_scores

    scores = trust_scores()
    assert scores.of(world.queue.pk, careful[0].pk) == profiles[careful[0].pk].model_score
    # gold trust, where it exists, comes first
    AnnotatorQueueState.objects.create(annotator=careful[0], queue=world.queue, trust=0.31)
    assert trust_scores().of(world.queue.pk, careful[0].pk) == 0.31
    weighted = version_frozen(
        dataset_name="tw",
        filter_spec={"queues": [world.queue.pk], "aggregator": "trust_weighted"},
    )
    records = _records(weighted)
    # two careful annotators (model trust high) outweigh two left-clickers (low)
    for pair in world.pairs:
        assert records[pair.pk]["label"] == ("b" if pair.pk % 3 else "a")
