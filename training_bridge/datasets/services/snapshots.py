"""One call from a spec to a frozen, exported version: what `make demo` and scripts use.

`dataset_snapshot` creates the dataset if needed, reuses its newest version with the same
normalised specs (so running the demo twice makes no second version), or creates one, then
freezes and exports it: in this process with `run_now=True`, else as `cpu` tasks (the exports
start when the freeze finishes).
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from training_bridge.datasets.services.datasets import (
    dataset_get_or_create,
    dataset_version_create,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import (
    FORMATS,
    dataset_export_run,
    dataset_exports_request,
)
from training_bridge.datasets.services.freezing import dataset_version_freeze
from training_bridge.datasets.services.specs import dataset_specs_resolve
from training_bridge.models import DatasetExport, DatasetVersion

log = logging.getLogger(__name__)


def dataset_snapshot(
    *,
    dataset_name: str,
    filter_spec: Any,
    split_spec: Any = None,
    formats: list[str] | None = None,
    include_images: bool = True,
    run_now: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> DatasetVersion:
    """A frozen (or freezing) version of `dataset_name` over the spec, with its exports asked.

    Returns the version; with `run_now` it is frozen and its exports are done on return.
    """
    dataset = dataset_get_or_create(name=dataset_name, created_by=created_by)
    specs = dataset_specs_resolve(filter_spec=filter_spec, split_spec=split_spec or {})
    wanted = (specs.filter.as_json(), specs.split.as_json())
    version = next(
        (
            v
            for v in DatasetVersion.objects.filter(dataset=dataset)
            .exclude(status=DatasetVersion.Status.FAILED)
            .order_by("-number")
            if (v.filter_spec, v.split_spec) == wanted
        ),
        None,
    )
    if version is None:
        version = dataset_version_create(
            dataset_id=dataset.pk,
            filter_spec=filter_spec,
            split_spec=split_spec or {},
            created_by=created_by,
        )
    if run_now:
        version = dataset_version_freeze(version_id=version.pk)
        for export in dataset_exports_request(
            version_id=version.pk,
            formats=formats or list(FORMATS),
            include_images=include_images,
            enqueue=False,
        ):
            if export.status != DatasetExport.Status.DONE:
                dataset_export_run(export_id=export.pk)
    else:
        if version.status == DatasetVersion.Status.DRAFT:
            version = dataset_version_freeze_request(version_id=version.pk)
        dataset_exports_request(
            version_id=version.pk, formats=formats or list(FORMATS), include_images=include_images
        )
    log.info("dataset.snapshot version=%s status=%s", version.pk, version.status)
    version.refresh_from_db()
    return version
