"""Roles: the groups `annotator`, `lead` and `ml`, what each may touch, and account creation.

Annotators reach only the labeling UI and its API (never the admin: they are not staff).
Who may do what is the role matrix in config/permissions.py; the groups' Django permissions
are derived from it here. Permissions are named by app label so this module needs none of the
apps' models.
"""

from enum import StrEnum

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.db.models import Q

from config.errors import ValidationFailed


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


def user_create(
    *, username: str, password: str, role: Role | str, email: str = "", exist_ok: bool = False
) -> AbstractBaseUser:
    """Create (or with exist_ok, update) an account with one role."""
    from annotation.models import AnnotatorProfile  # config sits above the apps

    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}", field="role"
        ) from None
    if not username or len(username) > 150:
        raise ValidationFailed("a username of 1 to 150 characters is required", field="username")
    if len(password) < 8:
        raise ValidationFailed("the password needs at least 8 characters", field="password")
    User = get_user_model()
    with transaction.atomic():
        groups = role_groups_ensure()
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if not created and not exist_ok:
            raise ValidationFailed(f"user {username!r} exists already", field="username")
        user.set_password(password)
        user.email = email or user.email
        user.is_superuser = role is Role.ADMIN
        user.is_staff = role in (Role.ADMIN, Role.LEAD, Role.ML)
        user.save()
        user.groups.set([groups[role]] if role in groups else [])
        if role is Role.ANNOTATOR:
            AnnotatorProfile.objects.get_or_create(user=user)
    return user
