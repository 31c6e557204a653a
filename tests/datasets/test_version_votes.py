"""A version's votes table: written by the freeze from the votes it counted, converted by its
exports without reading the judgments again; a version frozen before that still exports it."""

from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import AnnotatorQueueState, Judgment
from tests.datasets.factories import judge, version_frozen, world_build
from training_bridge.datasets.exporters.votes_table import stored_write
from training_bridge.datasets.selectors.version_votes import version_vote_chunks
from training_bridge.datasets.services import freezing
from training_bridge.datasets.services.artifacts import artifact_exists, artifact_storage
from training_bridge.datasets.services.exports import (
    dataset_export_request,
    dataset_export_run,
    version_votes_key,
)

pytestmark = pytest.mark.django_db


def _stored(version, tmp_path):
    path = tmp_path / "stored.parquet"
    with artifact_storage().open(version_votes_key(version=version), "rb") as handle:
        path.write_bytes(handle.read())
    return pq.read_table(path)


def _from_database(version, tmp_path):
    path = tmp_path / "from-database.parquet"
    stored_write(path, version_vote_chunks(version=version))
    return pq.read_table(path)


def _world():
    """Votes of every kind, some seen with candidate b on the left, and a skip."""
    world = world_build(groups=3, store_images=False)
    first, second, third = world.annotators
    for index, pair in enumerate(world.pairs):
        judge(pair, first, ["left", "right", "tie", "both_wrong"][index % 4], left_is_a=index % 2)
        judge(pair, second, "right" if index % 3 else "left", left_is_a=not index % 2)
        if index % 5:
            judge(pair, third, "skip" if index % 5 == 1 else "left")
    return world


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"annotators": {"mode": "list", "ids": ["rater0", "rater2"]}},
        {"count_choices": ["left", "right", "tie", "both_wrong", "skip"], "min_judgments": 2},
        {"judged_after": "recent"},
    ],
    ids=["default", "annotator-list", "skips-counted", "time-range"],
)
def test_the_freeze_stores_the_votes_the_database_gives_for_the_version(extra, tmp_path):
    world = _world()
    if extra.get("judged_after") == "recent":
        week_ago = timezone.now() - timedelta(days=7)
        Judgment.objects.filter(annotator=world.annotators[1]).update(created_at=week_ago)
        extra = {"judged_after": (timezone.now() - timedelta(days=1)).isoformat()}
    version = version_frozen(
        dataset_name="spatial",
        filter_spec={
            "queues": [world.queue.name],
            "keep_labels": ["winner", "tie", "both_wrong"],
            **extra,
        },
    )
    # Judgments and pauses after the freeze change neither table.
    for pair in world.pairs[::5]:
        judge(pair, world.annotators[2], "right")
    AnnotatorQueueState.objects.update_or_create(
        queue=world.queue, annotator=world.annotators[0], defaults={"status": "paused"}
    )

    stored = _stored(version, tmp_path)
    assert stored.num_rows == sum(
        sum(votes.values()) for votes in version.records.values_list("votes", flat=True)
    )
    assert stored.num_rows > 0
    assert set(stored.column("answer").to_pylist()) >= {"a", "b"}
    assert set(stored.column("left_side").to_pylist()) == {"a", "b"}
    assert stored.equals(_from_database(version, tmp_path))


def test_the_freeze_writes_the_votes_a_chunk_at_a_time(monkeypatch, tmp_path):
    world = _world()
    monkeypatch.setattr(freezing, "VOTE_CHUNK_ROWS", 5)
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})

    path = tmp_path / "stored.parquet"
    path.write_bytes(artifact_storage().open(version_votes_key(version=version), "rb").read())
    source = pq.ParquetFile(path)
    assert source.num_row_groups > 3
    assert max(source.metadata.row_group(g).num_rows for g in range(source.num_row_groups)) <= 6
    assert pq.read_table(path).equals(_from_database(version, tmp_path))


def _judgment_queries(run) -> list[str]:
    table = Judgment._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        run()
    return [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]


def _export(version, format: str):
    export = dataset_export_request(version_id=version.pk, format=format, include_images=False)
    return dataset_export_run(export_id=export.pk)


def _folder_votes(export, tmp_path):
    (artifact,) = [a for a in export.artifacts if a["name"] == "votes.parquet"]
    path = tmp_path / f"{export.format}-votes.parquet"
    path.write_bytes(artifact_storage().open(artifact["key"], "rb").read())
    return pq.read_table(path)


def test_exports_after_a_freeze_read_no_judgment(tmp_path):
    world = _world()
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})

    exports = {}
    for format in ("parquet", "jsonl"):
        assert _judgment_queries(lambda f=format: exports.update({f: _export(version, f)})) == []
    stored = _stored(version, tmp_path)
    # The canonical folder keeps the stored sides; the others flip a / b where shown swapped.
    assert _folder_votes(exports["jsonl"], tmp_path).equals(stored)
    assert _folder_votes(exports["parquet"], tmp_path).num_rows == stored.num_rows


def test_a_version_frozen_without_stored_votes_exports_them_from_the_database(tmp_path):
    world = _world()
    version = version_frozen(dataset_name="spatial", filter_spec={"queues": [world.queue.name]})
    expected = _stored(version, tmp_path)
    key = version_votes_key(version=version)
    artifact_storage().delete(key)  # as a version frozen before the freeze stored them

    read = _judgment_queries(lambda: _export(version, "jsonl"))
    assert read  # the first export read them from the database
    assert artifact_exists(key=key)
    assert _stored(version, tmp_path).equals(expected)
    export = dataset_export_request(version_id=version.pk, format="jsonl", include_images=False)
    assert _folder_votes(export, tmp_path).equals(expected)
    # and stored them for the next one
    assert _judgment_queries(lambda: _export(version, "parquet")) == []
