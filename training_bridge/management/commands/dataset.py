"""`manage.py dataset freeze|export|diff`: the same services as the admin and the API.

    manage.py dataset freeze --dataset spatial --filter-spec '{"queues": ["demo"]}'
    manage.py dataset freeze --dataset spatial --version 3          # an existing draft
    manage.py dataset export --dataset spatial --version 1 --format all [--no-images]
    manage.py dataset diff --dataset spatial 1 2 [--limit 20] [--votes] [--json]

Freezing and exporting run in this process unless --queue is given (then a `cpu` worker does
it). Specs are JSON text or @path/to/spec.json. Errors name the offending field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import DomainError, ValidationFailed
from config.input_checks import json_loads
from training_bridge.datasets.selectors.datasets import (
    dataset_version_by_number,
    dataset_version_diff,
)
from training_bridge.datasets.services.datasets import (
    dataset_get_or_create,
    dataset_version_create,
    dataset_version_freeze_request,
)
from training_bridge.datasets.services.exports import (
    FORMATS,
    dataset_export_request,
    dataset_export_run,
)
from training_bridge.datasets.services.freezing import dataset_version_freeze


def _spec(raw: str | None, name: str) -> Any:
    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as exc:
            raise CommandError(f"{name}: cannot read {raw[1:]}: {exc}") from None
    try:
        return json_loads(text, field=name)  # bounded depth, no NUL or lone surrogate
    except ValidationFailed as exc:
        if exc.code == "parse_error":
            raise CommandError(f"{name}: not valid JSON ({exc.detail})") from None
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = "Freeze, export and compare dataset versions."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        freeze = actions.add_parser("freeze", help="create and freeze a version")
        freeze.add_argument("--dataset", required=True, help="dataset name (created if new)")
        freeze.add_argument("--version", type=int, help="freeze this existing draft instead")
        freeze.add_argument("--filter-spec", help="JSON, or @file")
        freeze.add_argument("--split-spec", help="JSON, or @file")
        freeze.add_argument("--parent", type=int, help="parent version number")
        freeze.add_argument("--queue", action="store_true", help="let a cpu worker freeze it")

        export = actions.add_parser("export", help="export a frozen version")
        export.add_argument("--dataset", required=True)
        export.add_argument("--version", type=int, required=True)
        export.add_argument("--format", default="all", choices=[*FORMATS, "all"])
        export.add_argument("--no-images", action="store_true", help="image keys, no bytes")
        export.add_argument("--force", action="store_true", help="export again if done")
        export.add_argument("--queue", action="store_true", help="let a cpu worker export it")

        diff = actions.add_parser(
            "diff",
            help="pairs added, removed, relabelled, moved split; unchanged = same label and "
            "same split (votes may differ: --votes lists those)",
            description="Compare two frozen versions pair by pair. A pair in both is "
            "'unchanged' when it has the same label and the same split, even if its votes or "
            "agreement changed; --votes also counts and lists those pairs ('revoted').",
        )
        diff.add_argument("--dataset", required=True)
        diff.add_argument("base", type=int, help="version number")
        diff.add_argument("other", type=int, help="version number")
        diff.add_argument("--limit", type=int, default=20)
        diff.add_argument("--json", action="store_true", help="print the diff as JSON")
        diff.add_argument(
            "--votes",
            action="store_true",
            help="also report unchanged pairs whose vote counts or agreement changed",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except DomainError as exc:
            raise CommandError(str(exc)) from None

    def _freeze(self, options: dict[str, Any]) -> None:
        if options["version"] is not None:
            if options["filter_spec"] or options["split_spec"]:
                raise CommandError("filter-spec: give specs for a new version, not with --version")
            version = dataset_version_by_number(
                dataset_name=options["dataset"], number=options["version"]
            )
        else:
            if options["filter_spec"] is None:
                raise CommandError("filter-spec: required to create a version")
            filter_spec = _spec(options["filter_spec"], "filter-spec")
            split_spec = _spec(options["split_spec"], "split-spec")
            dataset = dataset_get_or_create(name=options["dataset"])
            parent_id = None
            if options["parent"] is not None:
                parent_id = dataset_version_by_number(
                    dataset_name=dataset.name, number=options["parent"]
                ).pk
            version = dataset_version_create(
                dataset_id=dataset.pk,
                filter_spec=filter_spec,
                split_spec=split_spec,
                parent_id=parent_id,
            )
        if options["queue"]:
            dataset_version_freeze_request(version_id=version.pk)
            self.stdout.write(f"{version}: freezing on the cpu queue (version id {version.pk})")
            return
        version = dataset_version_freeze(version_id=version.pk)
        self.stdout.write(
            f"{version}: frozen, {version.record_count} records, hash {version.content_hash}"
        )

    def _export(self, options: dict[str, Any]) -> None:
        version = dataset_version_by_number(
            dataset_name=options["dataset"], number=options["version"]
        )
        formats = FORMATS if options["format"] == "all" else (options["format"],)
        for chosen in formats:
            export = dataset_export_request(
                version_id=version.pk,
                format=chosen,
                include_images=not options["no_images"],
                force=options["force"],
                enqueue=options["queue"],
            )
            if options["queue"]:
                self.stdout.write(f"{version} {chosen}: {export.status} (export id {export.pk})")
                continue
            export = dataset_export_run(export_id=export.pk)
            for artifact in export.artifacts:
                self.stdout.write(
                    f"{version} {chosen}: {artifact['key']} {artifact['size']} bytes "
                    f"sha256 {artifact['sha256']}"
                )

    def _diff(self, options: dict[str, Any]) -> None:
        base = dataset_version_by_number(dataset_name=options["dataset"], number=options["base"])
        other = dataset_version_by_number(dataset_name=options["dataset"], number=options["other"])
        diff = dataset_version_diff(
            base_id=base.pk, other_id=other.pk, limit=options["limit"], votes=options["votes"]
        )
        if options["json"]:
            self.stdout.write(json.dumps(diff, indent=2))
            return
        counts = diff["counts"]
        self.stdout.write(
            f"{base} -> v{other.number}: {counts['added']} added, {counts['removed']} removed, "
            f"{counts['relabelled']} relabelled, {counts['resplit']} moved split, "
            f"{counts['unchanged']} unchanged ({diff['unchanged_means']})"
            + (f", {counts['revoted']} of them with other votes" if options["votes"] else "")
        )
        for pair_id in diff["added"]:
            self.stdout.write(f"+ pair {pair_id}")
        for pair_id in diff["removed"]:
            self.stdout.write(f"- pair {pair_id}")
        for row in diff["relabelled"]:
            self.stdout.write(f"~ pair {row['pair_id']}: {row['from']} -> {row['to']}")
        for row in diff["resplit"]:
            self.stdout.write(f"> pair {row['pair_id']}: {row['from']} -> {row['to']}")
        for row in diff.get("revoted", []):
            self.stdout.write(
                f"= pair {row['pair_id']}: votes {row['votes_from']} -> {row['votes_to']}, "
                f"agreement {row['agreement_from']:.3f} -> {row['agreement_to']:.3f}"
            )
