"""manage.py create_token --username ann [--name load-test] [--days 7]: an API token for any
account (the API issues tokens to leads, ML engineers and admins only; load tests' annotators
get theirs here). The key is printed once: only its digest is stored."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import api_token_create
from config.errors import DomainError


class Command(BaseCommand):
    help = "Create an API token for an account and print its key (shown this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--days", type=float, help="Lifetime in days (default: API_TOKEN_LIFETIME_DAYS)."
        )

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"--username: no user {options['username']!r}")
        if not user.is_active:
            raise CommandError(f"--username: user {options['username']!r} is inactive")
        days = options["days"]
        try:
            issued = api_token_create(
                user=user,
                name=options["name"],
                lifetime=timedelta(days=days) if days is not None else None,
            )
        except DomainError as exc:
            raise CommandError(str(exc).replace("days:", "--days:", 1)) from exc
        token = issued.token
        expires = f"{token.expires_at:%Y-%m-%d %H:%M} UTC"
        # The key alone on stdout (scripts capture it); what it is on stderr.
        self.stderr.write(f"token {token.prefix}… for {user.get_username()}, expires {expires}")
        self.stdout.write(issued.key)
