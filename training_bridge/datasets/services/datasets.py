"""Datasets and their numbered versions: create, request a freeze, delete a draft.

A version is created from a filter spec and a split spec that are validated here and checked
to select at least one record, so a malformed spec or an empty selection is a 400 naming the
key, and nothing is saved. Freezing runs as a `cpu` task (`dataset_version_freeze_request`) or
in the calling process (`training_bridge.datasets.services.freezing.dataset_version_freeze`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from config.input_checks import json_check
from training_bridge.datasets.selectors.selection import selection_first_record
from training_bridge.datasets.services.specs import dataset_specs_resolve
from training_bridge.models import Dataset, DatasetVersion
from training_bridge.publishing import DATASET_VERSION_FREEZE, task_send_on_commit

log = logging.getLogger(__name__)

_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def dataset_create(
    *, name: str, description: str = "", created_by: AbstractBaseUser | None = None
) -> Dataset:
    if not isinstance(name, str) or not _SLUG.match(name):
        raise ValidationFailed(
            "a name of 1 to 100 letters, digits, '-' or '_' is required", field="name"
        )
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=name, description=description, created_by=created_by
            )
    except IntegrityError:
        raise ValidationFailed(f"dataset {name!r} exists already", field="name") from None
    log.info("dataset.created dataset=%s", dataset.pk)
    return dataset


def dataset_get_or_create(
    *, name: str, description: str = "", created_by: AbstractBaseUser | None = None
) -> Dataset:
    existing = Dataset.objects.filter(name=name).first()
    if existing is not None:
        return existing
    try:
        return dataset_create(name=name, description=description, created_by=created_by)
    except ValidationFailed:
        found = Dataset.objects.filter(name=name).first()
        if found is None:
            raise
        return found


def dataset_version_create(
    *,
    dataset_id: int,
    filter_spec: Any,
    split_spec: Any = None,
    parent_id: int | None = None,
    created_by: AbstractBaseUser | None = None,
) -> DatasetVersion:
    """A draft version with the next number, its specs normalised.

    Refuses (400, naming the key) a malformed spec, a reference to nothing, or a selection
    without a single record. The parent defaults to the dataset's newest frozen version.
    """
    if not Dataset.objects.filter(pk=dataset_id).exists():
        raise NotFound(f"no dataset {dataset_id}", field="dataset")
    # Names in a spec are looked up in the database and the spec is stored as jsonb: neither
    # takes a NUL character or a lone surrogate.
    json_check(filter_spec, field="filter_spec")
    json_check(split_spec, field="split_spec")
    specs = dataset_specs_resolve(filter_spec=filter_spec, split_spec=split_spec or {})
    selection_first_record(spec=specs.filter, split=specs.split)
    if parent_id is not None:
        parent = DatasetVersion.objects.filter(pk=parent_id).first()
        if parent is None:
            raise ValidationFailed(f"no dataset version {parent_id}", field="parent")
        if parent.dataset_id != dataset_id:
            raise ValidationFailed("the parent belongs to another dataset", field="parent")
    with transaction.atomic():
        # The dataset row is the lock that serialises numbering.
        Dataset.objects.select_for_update().get(pk=dataset_id)
        if parent_id is None:
            parent_id = (
                DatasetVersion.objects.filter(
                    dataset_id=dataset_id, status=DatasetVersion.Status.FROZEN
                )
                .order_by("-number")
                .values_list("pk", flat=True)
                .first()
            )
        number = (
            DatasetVersion.objects.filter(dataset_id=dataset_id).aggregate(n=Max("number"))["n"]
            or 0
        ) + 1
        version = DatasetVersion.objects.create(
            dataset_id=dataset_id,
            number=number,
            parent_id=parent_id,
            filter_spec=specs.filter.as_json(),
            split_spec=specs.split.as_json(),
            aggregator=specs.filter.aggregator,
            created_by=created_by,
        )
    log.info("dataset.version.created version=%s number=%s", version.pk, number)
    return version


def dataset_version_freeze_request(*, version_id: int) -> DatasetVersion:
    """Queue the freeze of a draft (or failed) version on the `cpu` queue."""
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"no dataset version {version_id}", field="version")
        if version.status == DatasetVersion.Status.FROZEN:
            raise Conflict(f"{version} is frozen already", field="version")
        if version.status == DatasetVersion.Status.FREEZING:
            return version
        version.status = DatasetVersion.Status.FREEZING
        version.error = ""
        # Published now: a lost message is published again by the sweep a period from here.
        version.freeze_heartbeat_at = timezone.now()
        version.save(update_fields=["status", "error", "freeze_heartbeat_at"])
        task_send_on_commit(DATASET_VERSION_FREEZE, kwargs={"version_id": version.pk})
    log.info("dataset.freeze.requested version=%s", version.pk)
    return version


def dataset_version_delete(*, version_id: int) -> None:
    """Delete a version that was never frozen (a frozen one is permanent)."""
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"no dataset version {version_id}", field="version")
        if version.status in (DatasetVersion.Status.FROZEN, DatasetVersion.Status.FREEZING):
            raise Conflict(f"{version} is {version.status}: it cannot be deleted", field="version")
        if version.children.exists():
            raise Conflict(f"{version} is the parent of other versions", field="version")
        # A version that never froze has no finished export, only requests waiting for it.
        version.exports.all().delete()
        version.records.all().delete()
        version.delete()
    log.info("dataset.version.deleted version=%s", version_id)
