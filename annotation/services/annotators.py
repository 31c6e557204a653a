"""Accounts: a user with one role, and for an annotator the profile the labeling stage keeps
(daily target, quality score, notes).

Account creation lives here, not in config/roles.py, because an annotator's account comes
with its profile, an annotation model: config is the floor every app builds on and imports
none of them. The role itself (its group and the permissions the role matrix gives it) is
config's (`role_groups_ensure`). The `create_user` command, the demo seeding, the benches and
the tests all create accounts through `user_create`.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import AnnotatorProfile
from config.errors import ValidationFailed
from config.roles import Role, role_groups_ensure

MIN_PASSWORD = 8


def user_create(
    *, username: str, password: str, role: Role | str, email: str = "", exist_ok: bool = False
) -> AbstractBaseUser:
    """Create (or with exist_ok, update) an account with one role; an annotator gets a profile."""
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}", field="role"
        ) from None
    if not username or len(username) > 150:
        raise ValidationFailed("a username of 1 to 150 characters is required", field="username")
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"the password needs at least {MIN_PASSWORD} characters", field="password"
        )
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
