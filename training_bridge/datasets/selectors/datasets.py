"""Reads of datasets, versions, records and exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from config.errors import Conflict, NotFound
from training_bridge.datasets.aggregation.diff import diff_streams
from training_bridge.models import DatasetRecord, DatasetVersion


def dataset_version_get(*, version_id: int) -> DatasetVersion:
    version = DatasetVersion.objects.select_related("dataset", "parent").filter(pk=version_id)
    found = version.first()
    if found is None:
        raise NotFound(f"no dataset version {version_id}", field="version")
    return found


def dataset_version_by_number(*, dataset_name: str, number: int) -> DatasetVersion:
    found = (
        DatasetVersion.objects.select_related("dataset")
        .filter(dataset__name=dataset_name, number=number)
        .first()
    )
    if found is None:
        raise NotFound(f"no version {number} of dataset {dataset_name!r}", field="version")
    return found


def version_canonical_chunks(
    *, version_id: int, chunk_size: int, columns: tuple[str, ...] = ("canonical",)
) -> Iterator[list]:
    """The version's records in canonical order, `chunk_size` at a time: the canonical lines
    (the default), or tuples of the record `columns` asked for.

    Positions run 0..n-1, so each chunk is one short query for a position range on the
    (version, position) unique index: no cursor or transaction stays open while an exporter
    works, and no plan can turn a page into a sort of the whole version.
    """
    flat = len(columns) == 1
    start = 0
    while True:
        rows = list(
            DatasetRecord.objects.filter(
                version_id=version_id, position__gte=start, position__lt=start + chunk_size
            )
            .order_by("position")
            .values_list(*columns, flat=flat)
        )
        if not rows:
            return
        start += chunk_size
        yield rows


def _label_rows(version_id: int, chunk_size: int = 10_000) -> Iterator[tuple]:
    after = 0
    while True:
        rows = list(
            DatasetRecord.objects.filter(version_id=version_id, pair_id__gt=after)
            .order_by("pair_id")
            .values_list("pair_id", "label", "split", "votes", "agreement")[:chunk_size]
        )
        if not rows:
            return
        after = rows[-1][0]
        yield from rows


def dataset_version_diff(
    *, base_id: int, other_id: int, limit: int = 100, votes: bool = False
) -> dict[str, Any]:
    """Pairs added, removed, relabelled and moved to another split from `base` to `other`;
    `unchanged` = same label and same split. With `votes`, also the unchanged pairs whose
    vote counts or agreement changed (`revoted`)."""
    base = dataset_version_get(version_id=base_id)
    other = dataset_version_get(version_id=other_id)
    for version, name in ((base, "version"), (other, "other")):
        if not version.is_frozen:
            raise Conflict(
                f"{version} is {version.status}; only frozen versions compare", field=name
            )
    diff = diff_streams(_label_rows(base.pk), _label_rows(other.pk), limit=limit, votes=votes)
    return {
        "base": {"id": base.pk, "dataset": base.dataset.name, "number": base.number},
        "other": {"id": other.pk, "dataset": other.dataset.name, "number": other.number},
        **diff.as_json(),
    }


def dataset_artifact_key(*, version: DatasetVersion, name: str) -> str:
    """The storage key of a listed artifact of the version (`<folder>/<file>` or the manifest).

    Only files the version lists can be fetched: a download never reaches an arbitrary key.
    """
    from training_bridge.datasets.services.artifacts import version_prefix
    from training_bridge.datasets.services.exports import export_folder
    from training_bridge.datasets.services.manifests import MANIFEST_NAME
    from training_bridge.models import DatasetExport

    prefix = version_prefix(dataset_name=version.dataset.name, number=version.number)
    if name == MANIFEST_NAME and version.is_frozen:
        return f"{prefix}/{MANIFEST_NAME}"
    for export in version.exports.filter(status=DatasetExport.Status.DONE):
        folder = export_folder(format=export.format, include_images=export.include_images)
        for artifact in export.artifacts:
            if f"{folder}/{artifact['name']}" == name:
                return artifact["key"]
    raise NotFound(f"{version} has no artifact {name!r}", field="name")
