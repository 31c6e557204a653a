"""A version's manifest: what went into it, what it holds, what was exported from it.

The frozen part (specs, aggregator, composition counts, annotator counts, selection stats,
code version, parent, hash) is stored on the version when it freezes and never changes. The
`manifest.json` beside the artifacts adds every finished export's files with size and sha256;
it is rewritten whenever an export finishes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import subprocess
from typing import Any

from django.conf import settings

from training_bridge.datasets.aggregation.aggregators import AGGREGATORS
from training_bridge.datasets.aggregation.records import Composition
from training_bridge.datasets.exporters.sides import RULE as SIDE_RULE
from training_bridge.datasets.selectors.selection import SelectionStats
from training_bridge.datasets.services.artifacts import artifact_put_bytes, version_prefix
from training_bridge.datasets.services.specs import ResolvedSpecs
from training_bridge.models import DatasetExport, DatasetVersion

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@functools.cache
def code_version() -> str:
    """`git describe` of the checkout, else the installed package's version."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        log.info("dataset.code_version.no_git")
    try:
        return f"spatialprefs {importlib.metadata.version('spatialprefs')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def library_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def aggregator_json(*, specs: ResolvedSpecs, stats: SelectionStats) -> dict[str, Any]:
    """How the labels were made: the aggregator, its options (defaults spelled out), the
    criterion, the library and its version, and what the model's fit reported."""
    spec = specs.filter
    library = AGGREGATORS[spec.aggregator].library
    return {
        "name": spec.aggregator,
        "options": dict(sorted(spec.aggregator_options.items())),
        "criterion": spec.criterion,
        "library": None
        if library is None
        else {"name": library, "version": library_version(library)},
        "fit": stats.fit,
    }


def manifest_build(
    *,
    version: DatasetVersion,
    specs: ResolvedSpecs,
    composition: Composition,
    stats: SelectionStats,
) -> dict[str, Any]:
    parent = None
    if version.parent_id is not None:
        row = DatasetVersion.objects.filter(pk=version.parent_id).values(
            "id", "number", "content_hash"
        )
        parent = row.first()
    composed = composition.as_json()
    return {
        "manifest_format": 2,
        "dataset": version.dataset.name,
        "version": version.number,
        "parent": parent,
        "content_hash": version.content_hash,
        "hash_of": "sha256 of the canonical JSONL (jsonl/records.jsonl)",
        "record_count": version.record_count,
        "frozen_at": version.frozen_at.isoformat() if version.frozen_at else None,
        "filter_spec": version.filter_spec,
        "split_spec": version.split_spec,
        "aggregator": aggregator_json(specs=specs, stats=stats),
        "confidence": composed["confidence"],
        "queues": [{"id": pk, "name": name} for pk, name in specs.queue_names.items()],
        "campaigns": [{"id": pk, "name": name} for pk, name in specs.campaign_names.items()],
        "counts": composed["counts"],
        "annotators": composed["annotators"],
        "selection": stats.as_json(),
        "canonical_order": "prompt id, then pair id",
        "code_version": code_version(),
    }


def manifest_full(*, version: DatasetVersion) -> dict[str, Any]:
    """The frozen manifest plus every finished export's artifacts."""
    exports = version.exports.filter(status=DatasetExport.Status.DONE).order_by(
        "format", "include_images"
    )
    return {
        **version.manifest,
        "prefix": version_prefix(dataset_name=version.dataset.name, number=version.number),
        # Which image every export but the JSONL shows first (exporters/sides.py).
        "side_order": SIDE_RULE,
        "artifacts": [
            {
                "format": export.format,
                "include_images": export.include_images,
                "finished_at": export.finished_at.isoformat() if export.finished_at else None,
                "files": export.artifacts,
            }
            for export in exports
        ],
    }


def manifest_write(*, version_id: int) -> dict[str, Any]:
    """Write `manifest.json` under the version's prefix; returns its {key, size, sha256}."""
    version = DatasetVersion.objects.select_related("dataset").get(pk=version_id)
    body = json.dumps(manifest_full(version=version), indent=2, sort_keys=True) + "\n"
    prefix = version_prefix(dataset_name=version.dataset.name, number=version.number)
    stored = artifact_put_bytes(key=f"{prefix}/{MANIFEST_NAME}", data=body.encode())
    log.info("dataset.manifest.written version=%s key=%s", version_id, stored["key"])
    return stored
