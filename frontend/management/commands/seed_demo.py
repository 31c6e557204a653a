"""manage.py seed_demo: the demo's accounts and data (idempotent); needs the demo worker."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import DomainError
from frontend.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo accounts and data through the worker; write the logins to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--logins", default="var/demo-logins.txt", type=Path)
        parser.add_argument("--timeout", default=600, type=float, help="seconds per worker step")

    def handle(self, *args, **options) -> None:
        try:
            logins = demo_seed(
                logins_file=options["logins"], timeout=options["timeout"], say=self.stdout.write
            )
        except (DomainError, TimeoutError) as exc:
            raise CommandError(str(exc)) from exc
        for login in logins:
            self.stdout.write(f"{login.role.value}: {login.username} / {login.password}")
        self.stdout.write(f"(the logins are kept in {options['logins'].resolve()})")
