"""manage.py seed_demo: the demo's accounts and data (idempotent)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from frontend.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo accounts and data; write the logins to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--logins", default="var/demo-logins.txt", type=Path)

    def handle(self, *args, **options) -> None:
        logins = demo_seed(logins_file=options["logins"])
        for login in logins:
            self.stdout.write(f"{login.role.value}: {login.username} / {login.password}")
