"""Roles: the groups `annotator`, `lead` and `ml`, what each may touch, and account creation.

Annotators reach only the labeling UI and its API (never the admin: they are not staff).
Leads manage prompts, generation, labeling and datasets; ML engineers manage training and
reward models and may read the rest. Permissions are named by app label so this module needs
none of the apps' models.
"""

from enum import StrEnum

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction

from config.errors import ValidationFailed


class Role(StrEnum):
    ANNOTATOR = "annotator"
    LEAD = "lead"
    ML = "ml"
    ADMIN = "admin"  # a superuser; not a group


_DATASET_MODELS = ["dataset", "datasetversion", "datasetrecord", "datasetexport"]
_TRAINING_MODELS = ["trainingrun", "trainingmetric", "rewardmodel"]

# role -> list of (app_label, model or None for all, actions)
ROLE_PERMISSIONS: dict[Role, list[tuple[str, list[str] | None, tuple[str, ...]]]] = {
    Role.ANNOTATOR: [],
    Role.LEAD: [
        ("generation_workers", None, ("view", "add", "change", "delete")),
        ("annotation", None, ("view", "add", "change", "delete")),
        ("training_bridge", _DATASET_MODELS, ("view", "add", "change", "delete")),
        ("training_bridge", _TRAINING_MODELS, ("view",)),
        ("auth", ["user"], ("view",)),
    ],
    Role.ML: [
        ("training_bridge", None, ("view", "add", "change", "delete")),
        ("generation_workers", None, ("view",)),
        ("annotation", ["labelingqueue", "pair", "annotatorprofile"], ("view",)),
    ],
}


def role_groups_ensure() -> dict[Role, Group]:
    """Create the role groups and (re)set their permissions; safe to run any number of times."""
    groups: dict[Role, Group] = {}
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted: list[Permission] = []
        for app_label, models, actions in grants:
            perms = Permission.objects.filter(content_type__app_label=app_label)
            if models is not None:
                perms = perms.filter(content_type__model__in=models)
            wanted.extend(p for p in perms if p.codename.split("_", 1)[0] in actions)
        group.permissions.set(wanted)
        groups[role] = group
    return groups


def user_has_role(user: AbstractBaseUser, *roles: Role) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    names = {r.value for r in roles}
    return any(g.name in names for g in user.groups.all())


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
