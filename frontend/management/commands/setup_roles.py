"""manage.py setup_roles: create the role groups and set their permissions (idempotent)."""

from django.core.management.base import BaseCommand

from config.roles import role_groups_ensure


class Command(BaseCommand):
    help = "Create the annotator, lead and ml groups with their permissions."

    def handle(self, *args, **options) -> None:
        groups = role_groups_ensure()
        for role, group in groups.items():
            self.stdout.write(f"{role.value}: {group.permissions.count()} permissions")
