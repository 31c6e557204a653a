"""Roles: the groups `annotator`, `lead` and `ml`, and what each may touch.

Annotators reach only the labeling UI and its API (never the admin: they are not staff).
Who may do what is the role matrix in config/permissions.py; the groups' Django permissions
are derived from it here. Permissions are named by app label so this module needs none of the
apps' models: config imports no app. Accounts are created with their role, and an annotator's
with its profile, by annotation.services.annotators.user_create.
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db.models import Q


class Role(StrEnum):
    ANNOTATOR = "annotator"
    LEAD = "lead"
    ML = "ml"
    ADMIN = "admin"  # a superuser; not a group


def role_groups_ensure() -> dict[Role, Group]:
    """Create the role groups and (re)set their Django permissions from the role matrix's admin
    rows (config/permissions.py); safe to run any number of times.

    Our admin classes read the matrix itself; these permissions serve the admin pages we do not
    write (users, groups, lockouts) and anything else that asks `user.has_perm`."""
    from config.permissions import ADMIN_MODELS  # it imports Role from here

    groups: dict[Role, Group] = {}
    for role in (Role.ANNOTATOR, Role.LEAD, Role.ML):
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = Q(pk__in=[])
        for label, actions in ADMIN_MODELS.items():
            app_label, model = label.split(".")
            codenames = [f"{action}_{model}" for action, roles in actions.items() if role in roles]
            if codenames:
                wanted |= Q(content_type__app_label=app_label, codename__in=codenames)
        group.permissions.set(Permission.objects.filter(wanted))
        groups[role] = group
    return groups


def user_has_role(user: AbstractBaseUser, *roles: Role) -> bool:
    """Whether the user has one of the roles (a superuser has every role)."""
    from config.permissions import ADMIN, user_roles

    if not user.is_authenticated:
        return False
    held = user_roles(user)
    return ADMIN in held or bool(held & set(roles))
