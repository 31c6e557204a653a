"""manage.py import_prompts FILE [FILE ...] --name NAME [--format FORMAT]: import prompts from
our JSON Lines, or from a spatial benchmark's own files (GenEval's evaluation_metadata.jsonl,
T2I-CompBench's spatial*.txt, DPG-Bench's prompts/ folder)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import DomainError
from generation_workers.services.prompts import prompt_set_import, prompt_set_import_benchmark
from generation_workers.spatial.benchmarks import BENCHMARK_FORMATS


class Command(BaseCommand):
    help = (
        "Import prompts: a JSONL file (text + objects + relations), or with --format a "
        "benchmark's files (a folder stands for its *.txt files, e.g. dpg_bench/prompts/). "
        "Any bad line rejects the import; nothing is saved."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, nargs="+")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--format", choices=["jsonl", *BENCHMARK_FORMATS], default="jsonl",
            help="jsonl (ours), geneval, t2i-compbench or dpg-bench",
        )  # fmt: skip
        parser.add_argument("--vocabulary", help="jsonl: builtin vocabulary to check names against")

    def handle(self, *args, **options) -> None:
        paths: list[Path] = options["file"]
        if options["format"] == "jsonl":
            if len(paths) != 1:
                raise CommandError("file: a JSONL import reads one file")
            prompt_set = self._jsonl(paths[0], options)
        else:
            prompt_set = self._benchmark(paths, options)
        self.stdout.write(
            f"prompt set {prompt_set} (id {prompt_set.pk}): {prompt_set.prompt_count} prompts"
        )
        notes = {k: v for k, v in prompt_set.spec.items() if k not in ("format", "files")}
        if notes:
            self.stdout.write(f"notes: {notes}")

    def _jsonl(self, path: Path, options):
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
                return prompt_set_import(
                    name=options["name"], lines=lines(), vocabulary=options["vocabulary"]
                )
            except UnicodeDecodeError as exc:
                raise CommandError(f"file: {path} is not UTF-8 text") from exc
            except DomainError as exc:
                raise CommandError(str(exc)) from exc

    def _benchmark(self, paths: list[Path], options):
        if options["vocabulary"]:
            raise CommandError("vocabulary: a benchmark format has its own vocabulary")
        files: list[tuple[str, bytes]] = []
        for path in paths:
            members = sorted(path.glob("*.txt")) if path.is_dir() else [path]
            if not members:
                raise CommandError(f"file: {path} holds no .txt file")
            for member in members:
                try:
                    files.append((member.name, member.read_bytes()))
                except OSError as exc:
                    raise CommandError(f"file: cannot read {member}: {exc.strerror}") from exc
        try:
            return prompt_set_import_benchmark(
                name=options["name"], fmt=options["format"], files=files
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
