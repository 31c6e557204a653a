"""manage.py import_prompts FILE --name NAME: import scene prompts from JSON Lines."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import DomainError
from generation_workers.services.prompts import prompt_set_import


class Command(BaseCommand):
    help = "Import a JSONL file of prompts (text + objects + relations); any bad line rejects it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--name", required=True)
        parser.add_argument("--vocabulary", help="builtin vocabulary to check names against")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        try:
            handle = path.open(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"file: cannot read {path}: {exc.strerror}") from exc
        with handle, tqdm(unit="line", disable=None, desc="checking") as bar:

            def lines():
                for line in handle:
                    bar.update(1)
                    yield line

            try:
                prompt_set = prompt_set_import(
                    name=options["name"], lines=lines(), vocabulary=options["vocabulary"]
                )
            except UnicodeDecodeError as exc:
                raise CommandError(f"file: {path} is not UTF-8 text") from exc
            except DomainError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"prompt set {prompt_set} (id {prompt_set.pk}): {prompt_set.prompt_count} prompts"
        )
