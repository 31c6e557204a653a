"""manage.py generation_tiny_model FOLDER: write a random-weight Stable Diffusion folder.

For smoke-testing a GPU worker end to end without downloading weights: make a config with
backend diffusers and this folder, run its check, launch a small campaign.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Write a tiny random-weight Stable Diffusion pipeline (~7 MB) to FOLDER."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="where to save it (must not exist)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")

    def handle(self, *args, **options) -> None:
        folder = options["folder"].resolve()
        if folder.exists():
            raise CommandError(f"folder: {folder} exists already; name a new folder")
        from generation_workers.backends.tiny import tiny_pipeline_save  # imports torch

        tiny_pipeline_save(folder, seed=options["seed"])
        self.stdout.write(f"saved a tiny Stable Diffusion pipeline to {folder}")
