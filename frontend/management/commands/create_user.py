"""manage.py create_user --role annotator --username ann --password ... (non-interactive)."""

import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.services.annotators import user_create
from config.errors import DomainError
from config.roles import Role


class Command(BaseCommand):
    help = "Create an account with one role (annotator, lead, ml, admin) without prompts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument(
            "--password",
            help="The password; or set it in the environment variable named by --password-env.",
        )
        parser.add_argument("--password-env", help="Read the password from this variable.")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--update", action="store_true", help="Reset the password and role of an existing user."
        )

    def handle(self, *args, **options) -> None:
        password = options["password"]
        if options["password_env"]:
            password = os.environ.get(options["password_env"])
            if password is None:
                raise CommandError(f"--password-env: variable {options['password_env']} is not set")
        if not password:
            raise CommandError("--password: give a password or --password-env")
        try:
            user = user_create(
                username=options["username"],
                password=password,
                role=options["role"],
                email=options["email"],
                exist_ok=options["update"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"user {user.get_username()} ready with role {options['role']}")
