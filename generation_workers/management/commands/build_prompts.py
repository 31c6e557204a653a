"""manage.py build_prompts SPEC --name NAME: build a prompt set from a JSON or YAML spec."""

from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import DomainError
from generation_workers.models import PromptSet
from generation_workers.services.prompts import prompt_set_create, prompt_set_populate


class Command(BaseCommand):
    help = "Build a prompt set from a spec file (JSON or YAML) and save it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("spec", type=Path, help="the spec file (.json, .yaml or .yml)")
        parser.add_argument("--name", required=True, help="the prompt set's name")

    def handle(self, *args, **options) -> None:
        spec = read_spec(options["spec"])
        try:
            prompt_set = prompt_set_create(name=options["name"], spec=spec)
            if prompt_set.status == PromptSet.Status.BUILDING:
                # Large sets: build here with a progress bar instead of waiting for a worker.
                with tqdm(total=spec.get("size"), unit="prompt", disable=None) as bar:
                    prompt_set = prompt_set_populate(
                        prompt_set_id=prompt_set.pk, progress=lambda n: bar.update(n - bar.n)
                    )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        if prompt_set.status == PromptSet.Status.FAILED:
            raise CommandError(prompt_set.error)
        self.stdout.write(
            f"prompt set {prompt_set} (id {prompt_set.pk}): {prompt_set.prompt_count} prompts"
        )


def read_spec(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"spec: cannot read {path}: {exc.strerror}") from exc
    try:
        spec = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise CommandError(f"spec: {path} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise CommandError(f"spec: {path} must hold an object at the top")
    return spec
