"""Freezing versions: what gets selected and how it is labelled, split, hashed and kept."""

import json
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import AnnotatorProfile, Judgment, LabelingQueue
from config.errors import Conflict, ValidationFailed
from tests.datasets.factories import (
    judge,
    judge_bulk,
    prefer,
    records_of,
    version_frozen,
    world_build,
)
from training_bridge.datasets.aggregation.specs import split_spec_parse
from training_bridge.datasets.aggregation.splits import split_for_group
from training_bridge.datasets.selectors.datasets import dataset_version_diff
from training_bridge.datasets.services.datasets import (
    dataset_create,
    dataset_version_create,
    dataset_version_delete,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import dataset_export_request
from training_bridge.models import Dataset, DatasetExport, DatasetRecord, DatasetVersion

pytestmark = pytest.mark.django_db


def _split_votes(pair):
    """Even pair ids: a split vote (left vs right); odd: two votes for candidate a."""
    return ["left", "right"] if pair.pk % 2 == 0 else ["left", "left"]


def test_same_spec_over_same_data_gives_the_same_hash():
    world = world_build(groups=4)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    spec = {"queues": [world.queue.name]}

    first = version_frozen(dataset_name="spatial", filter_spec=spec)
    second = version_frozen(dataset_name="spatial", filter_spec=spec)

    assert (first.number, second.number) == (1, 2)
    assert second.parent_id == first.pk
    assert first.status == second.status == DatasetVersion.Status.FROZEN
    assert first.record_count == second.record_count == 16
    assert first.content_hash == second.content_hash
    assert records_of(first) == records_of(second)


def test_new_judgments_after_freezing_change_nothing_in_the_frozen_version():
    world = world_build(groups=3)
    judge_bulk(world, _split_votes)
    spec = {"queues": [world.queue.name]}
    frozen = version_frozen(dataset_name="spatial", filter_spec=spec)
    before = records_of(frozen)
    assert {label for _, label, _, _ in before} == {"a", "tie"}

    # A third annotator breaks every split vote in favour of candidate b.
    for pair in world.pairs:
        if pair.pk % 2 == 0:
            judge(pair, world.annotators[2], "right")

    frozen.refresh_from_db()
    assert records_of(frozen) == before
    assert frozen.record_count == 12
    newer = version_frozen(dataset_name="spatial", filter_spec=spec)
    assert newer.content_hash != frozen.content_hash
    diff = dataset_version_diff(base_id=frozen.pk, other_id=newer.pk, limit=100)
    even = sorted(p.pk for p in world.pairs if p.pk % 2 == 0)
    assert diff["counts"] == {
        "added": 0,
        "removed": 0,
        "relabelled": 6,
        "resplit": 0,
        "unchanged": 6,
    }
    assert diff["relabelled"] == [{"pair_id": pk, "from": "tie", "to": "b"} for pk in even]


def test_no_prompt_group_straddles_splits_and_held_out_relations_go_to_their_split():
    world = world_build(groups=40)
    judge_bulk(world, lambda pair: ["left", "left", "left"])
    split_spec = {
        "seed": 3,
        "ratios": {"train": 0.5, "val": 0.25, "test": 0.25},
        "held_out": {"relations": ["above"], "split": "test"},
    }
    version = version_frozen(
        dataset_name="spatial", filter_spec={"queues": [world.queue.name]}, split_spec=split_spec
    )

    splits_by_group: dict[str, set[str]] = {}
    for group_key, split in DatasetRecord.objects.filter(version=version).values_list(
        "group_key", "split"
    ):
        splits_by_group.setdefault(group_key, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_by_group.values())
    parsed = split_spec_parse(split_spec)
    above = {f"g{i}" for i in range(40) if i % 4 == 2}  # the factory's relation cycle
    expected = {
        group: {split_for_group(group_key=group, spec=parsed, held_out=group in above)}
        for group in world.groups
    }
    assert splits_by_group == expected
    assert {s for group in above for s in splits_by_group[group]} == {"test"}
    assert {s for splits in splits_by_group.values() for s in splits} == {"train", "val", "test"}


def test_spatialscore_filter_keeps_counterfactual_pairs_whose_majority_agrees():
    world = world_build(groups=4)

    def votes(pair):
        if pair.kind == "same_prompt":
            return ["left", "left", "left"]
        group = int(pair.prompt.group_key[1:])
        side = (
            "intended"
            if group % 2 == 0
            else ("b" if pair.intended_winner_id == pair.candidate_a_id else "a")
        )
        return [prefer(side, pair)] * 2 + [prefer("intended", pair)]

    judge_bulk(world, votes)
    version = version_frozen(
        dataset_name="spatial",
        filter_spec={"queues": [world.queue.name], "counterfactual_filter": "agree_with_intended"},
    )
    kept = {pair_id for pair_id, _, _, _ in records_of(version)}
    expected = {
        p.pk for p in world.pairs if p.kind == "same_prompt" or int(p.prompt.group_key[1:]) % 2 == 0
    }
    assert kept == expected
    assert version.manifest["selection"]["dropped"]["counterfactual_filter"] == 4
    counterfactual = [
        json.loads(line) for _, _, _, line in records_of(version) if '"counterfactual"' in line
    ]
    assert len(counterfactual) == 4
    for record in counterfactual:
        assert record["intended_winner"] == record["label"]
        assert record["agrees_with_intended"] is True
        assert record["agreement"] == 1.0


PATTERNS = [
    ["left", "left", "left"],  # 0: a, 1.0
    ["left", "left", "right"],  # 1: a, 2/3
    ["tie", "tie", "left"],  # 2: tie, 2/3
    ["both_wrong", "both_wrong", "left"],  # 3: both wrong, 2/3
    ["left", "right", None],  # 4: a split vote -> tie rule
    ["skip", "left", None],  # 5: one counted vote for a (skips not counted by default)
]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {0: ("a", 1.0), 1: ("a", 2 / 3), 2: ("tie", 2 / 3), 4: ("tie", 0.5), 5: ("a", 1.0)}),
        (
            {"keep_labels": ["winner", "tie", "both_wrong"]},
            {
                0: ("a", 1.0),
                1: ("a", 2 / 3),
                2: ("tie", 2 / 3),
                3: ("both_wrong", 2 / 3),
                4: ("tie", 0.5),
                5: ("a", 1.0),
            },
        ),
        ({"min_agreement": 0.7}, {0: ("a", 1.0), 5: ("a", 1.0)}),
        ({"min_judgments": 3}, {0: ("a", 1.0), 1: ("a", 2 / 3), 2: ("tie", 2 / 3)}),
        (
            {"count_choices": ["left", "right", "tie", "both_wrong", "skip"]},
            {0: ("a", 1.0), 1: ("a", 2 / 3), 2: ("tie", 2 / 3), 4: ("tie", 0.5), 5: ("a", 0.5)},
        ),
        (
            {"count_choices": ["left", "right"]},
            {
                0: ("a", 1.0),
                1: ("a", 2 / 3),
                2: ("a", 1.0),
                3: ("a", 1.0),
                4: ("tie", 0.5),
                5: ("a", 1.0),
            },
        ),
        (
            {"aggregator_options": {"tie_rule": "drop"}},
            {0: ("a", 1.0), 1: ("a", 2 / 3), 2: ("tie", 2 / 3), 5: ("a", 1.0)},
        ),
    ],
)
def test_thresholds_choices_and_tie_rule_decide_each_label(extra, expected):
    world = world_build(groups=6, store_images=False)
    same_prompt = [p for p in world.pairs if p.kind == "same_prompt"][: len(PATTERNS)]
    pattern_of = {pair.pk: index for index, pair in enumerate(same_prompt)}
    judge_bulk(world, lambda pair: PATTERNS[pattern_of[pair.pk]] if pair.pk in pattern_of else [])
    version = version_frozen(
        dataset_name="spatial", filter_spec={"queues": [world.queue.name], **extra}
    )
    got = {}
    for pair_id, label, _, line in records_of(version):
        got[pattern_of[pair_id]] = (label, json.loads(line)["agreement"])
    assert got == expected


def test_annotator_list_and_quality_threshold_choose_whose_votes_count():
    world = world_build(groups=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "right", "right"])
    first, second, third = world.annotators
    only_first = version_frozen(
        dataset_name="by-list",
        filter_spec={
            "queues": [world.queue.name],
            "annotators": {"mode": "list", "ids": [first.username]},
        },
    )
    assert {label for _, label, _, _ in records_of(only_first)} == {"a"}
    assert only_first.manifest["annotators"] == {"count": 1, "judgments": {str(first.pk): 8}}

    AnnotatorProfile.objects.filter(user=first).update(quality_score=0.95)
    AnnotatorProfile.objects.filter(user=second).update(quality_score=0.5)
    trusted = version_frozen(
        dataset_name="by-quality",
        filter_spec={
            "queues": [world.queue.name],
            "annotators": {"mode": "quality", "min_quality": 0.9},
        },
    )
    assert trusted.content_hash == only_first.content_hash


def test_quality_threshold_before_any_quality_score_is_refused():
    world = world_build(groups=1, store_images=False)
    dataset = dataset_create(name="spatial")
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_create(
            dataset_id=dataset.pk,
            filter_spec={
                "queues": [world.queue.pk],
                "annotators": {"mode": "quality", "min_quality": 0.8},
            },
        )
    assert caught.value.field == "filter_spec.annotators.min_quality"
    assert DatasetVersion.objects.count() == 0


def test_time_range_counts_only_judgments_inside_it():
    world = world_build(groups=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "right", "right"])
    week_ago = timezone.now() - timedelta(days=7)
    Judgment.objects.exclude(annotator=world.annotators[0]).update(created_at=week_ago)
    version = version_frozen(
        dataset_name="spatial",
        filter_spec={
            "queues": [world.queue.name],
            "judged_after": (timezone.now() - timedelta(days=1)).isoformat(),
        },
    )
    assert {label for _, label, _, _ in records_of(version)} == {"a"}
    assert version.manifest["annotators"]["count"] == 1


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"min_agreement": 1.0},
            "filter_spec.min_agreement",
            "the selection is empty: 8 pairs match, and the last 8 have an agreement below 1.0",
        ),
        (
            {"min_judgments": 4},
            "filter_spec.min_judgments",
            "the selection is empty: 8 pairs match, and the last 8 have fewer than 4 counted",
        ),
        (
            {"pair_kinds": ["counterfactual"], "keep_labels": ["tie"]},
            "filter_spec.keep_labels",
            "have a label outside keep_labels ['tie']",
        ),
        (
            {"queues": ["no-such-queue"]},
            "filter_spec.queues[0]",
            "no labeling queue 'no-such-queue'",
        ),
        ({"min_agreement": 2}, "filter_spec.min_agreement", "must be between 0 and 1, got 2"),
    ],
)
def test_empty_selection_or_malformed_spec_is_refused_naming_the_key_and_saves_nothing(
    spec, field, message
):
    world = world_build(groups=2, store_images=False)
    judge_bulk(world, lambda pair: ["left", "left", "right"])
    dataset = dataset_create(name="spatial")
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_create(
            dataset_id=dataset.pk, filter_spec={"queues": [world.queue.name], **spec}
        )
    assert caught.value.field == field
    assert message in caught.value.detail
    assert DatasetVersion.objects.count() == 0
    assert DatasetRecord.objects.count() == 0


def test_a_queue_without_pairs_is_an_empty_selection_naming_the_queues():
    LabelingQueue.objects.create(name="empty")
    dataset = dataset_create(name="spatial")
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_create(dataset_id=dataset.pk, filter_spec={"queues": ["empty"]})
    assert caught.value.field == "filter_spec.queues"
    assert "no pair matches" in caught.value.detail


def test_services_refuse_to_change_a_frozen_version():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})
    with pytest.raises(Conflict, match="is frozen already"):
        dataset_version_freeze_request(version_id=version.pk)
    with pytest.raises(Conflict, match="cannot be deleted"):
        dataset_version_delete(version_id=version.pk)
    version.refresh_from_db()
    assert (version.status, version.record_count) == ("frozen", 4)


def test_exports_wait_for_a_frozen_version():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    dataset = dataset_create(name="spatial")
    draft = dataset_version_create(dataset_id=dataset.pk, filter_spec={"queues": [world.queue.pk]})
    with pytest.raises(Conflict, match="freeze it before exporting"):
        dataset_export_request(version_id=draft.pk, format="parquet")
    assert DatasetExport.objects.count() == 0


def _refused(fn) -> None:
    with pytest.raises(IntegrityError, match="is frozen"), transaction.atomic():
        fn()


def test_postgresql_refuses_any_change_to_a_frozen_version_or_its_records():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})
    records = DatasetRecord.objects.filter(version=version)
    before = records_of(version)
    first = records.order_by("position").first()

    _refused(lambda: records.filter(pk=first.pk).update(label="b"))
    _refused(lambda: records.filter(pk=first.pk).delete())
    _refused(
        lambda: DatasetRecord.objects.create(
            version=version, pair=world.pairs[0], split="train", label="a", agreement=1, position=99
        )
    )
    _refused(lambda: DatasetVersion.objects.filter(pk=version.pk).update(content_hash="0" * 64))
    _refused(lambda: DatasetVersion.objects.filter(pk=version.pk).update(status="draft"))
    _refused(lambda: DatasetVersion.objects.filter(pk=version.pk).delete())

    assert records_of(version) == before
    version.refresh_from_db()
    assert (version.status, version.record_count) == ("frozen", 4)


def test_records_of_a_version_that_is_not_frozen_stay_writable():
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    dataset = Dataset.objects.create(name="drafts")
    draft = DatasetVersion.objects.create(dataset=dataset, number=1)
    record = DatasetRecord.objects.create(
        version=draft, pair=world.pairs[0], split="train", label="a", agreement=1
    )
    DatasetRecord.objects.filter(pk=record.pk).update(label="b")
    assert DatasetRecord.objects.get(pk=record.pk).label == "b"


def test_manifest_counts_the_composition_and_names_code_and_parent(
    django_capture_on_commit_callbacks,
):
    world = world_build(groups=2)
    judge_bulk(world, lambda pair: ["left", "left", "tie"])
    spec = {"queues": [world.queue.name]}
    first = version_frozen(dataset_name="spatial", filter_spec=spec)
    with django_capture_on_commit_callbacks(execute=True):
        second = version_frozen(dataset_name="spatial", filter_spec=spec)

    manifest = second.manifest
    split_of = {g: split_for_group(group_key=g, spec=split_spec_parse({})) for g in world.groups}
    expected_splits: dict[str, int] = {}
    for group in world.groups:
        expected_splits[split_of[group]] = expected_splits.get(split_of[group], 0) + 4
    configs = sorted(c.name for c in world.configs)
    assert manifest["counts"] == {
        "split": dict(sorted(expected_splits.items())),
        "label": {"a": 8},
        "kind": {"counterfactual": 4, "same_prompt": 4},
        "relation": {"left_of": 4, "right_of": 4},
        "perturbation_type": {"original": 2, "swap": 6},
        "num_perturbations": {"0": 2, "1": 6},
        "config": {configs[0]: 8, configs[1]: 8},
        "split_label": {f"{s}/a": n for s, n in sorted(expected_splits.items())},
    }
    assert manifest["annotators"] == {
        "count": 3,
        "judgments": {str(u.pk): 8 for u in world.annotators},
    }
    assert manifest["parent"] == {
        "id": first.pk,
        "number": 1,
        "content_hash": first.content_hash,
    }
    assert manifest["content_hash"] == second.content_hash
    assert manifest["record_count"] == 8
    assert manifest["queues"] == [{"id": world.queue.pk, "name": world.queue.name}]
    assert manifest["code_version"].startswith(("git:", "spatialprefs "))
    stored = json.loads(storages["default"].open("datasets/spatial/v2/manifest.json").read())
    assert stored["content_hash"] == second.content_hash
    assert stored["artifacts"] == []


def test_freeze_request_queues_the_cpu_task_after_commit(django_capture_on_commit_callbacks):
    world = world_build(groups=1, store_images=False)
    judge_bulk(world, lambda pair: ["left"])
    dataset = dataset_create(name="spatial")
    draft = dataset_version_create(dataset_id=dataset.pk, filter_spec={"queues": [world.queue.pk]})
    with django_capture_on_commit_callbacks() as callbacks:
        version = dataset_version_freeze_request(version_id=draft.pk)
    assert version.status == "freezing"
    assert len(callbacks) == 1
    assert DatasetRecord.objects.count() == 0


def test_campaign_and_gold_filters_choose_the_pairs():
    first = world_build(groups=2, store_images=False, queue_name="first")
    second = world_build(groups=1, store_images=False, queue_name="second")
    for world in (first, second):
        judge_bulk(world, lambda pair: ["left"])
    gold = first.pairs[0]
    type(gold).objects.filter(pk=gold.pk).update(is_gold=True, gold_winner=gold.candidate_b_id)

    by_campaign = version_frozen(
        dataset_name="by-campaign", filter_spec={"campaigns": [first.campaign.name]}
    )
    assert {pair_id for pair_id, _, _, _ in records_of(by_campaign)} == {
        p.pk for p in first.pairs if p.pk != gold.pk
    }
    with_gold = version_frozen(
        dataset_name="gold",
        filter_spec={"campaigns": [first.campaign.pk], "include_gold": True},
    )
    records = {pair_id: json.loads(line) for pair_id, _, _, line in records_of(with_gold)}
    assert set(records) == {p.pk for p in first.pairs}
    # a gold pair's label is its known answer, whatever the votes said
    assert (records[gold.pk]["label"], records[gold.pk]["gold"]) == ("b", True)
    assert (records[gold.pk]["votes"]["a"], records[gold.pk]["confidence"]) == (1, 1.0)
    assert records[gold.pk]["settled"] is False
    everything = version_frozen(dataset_name="all", filter_spec={})
    assert everything.record_count == 11
