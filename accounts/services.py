"""API tokens: issue (the key is returned once), revoke one, revoke all of an account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.keys import key_digest, key_new, key_prefix
from accounts.models import ApiToken
from config.errors import Forbidden, NotFound, ValidationFailed
from config.permissions import TOKEN_ROLES, token_issue_allowed
from config.roles import Role

NAME_MAX = ApiToken._meta.get_field("name").max_length


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown to the caller once; only its digest is stored


def api_token_create(
    *, user: AbstractBaseUser, name: str = "", lifetime: timedelta | None = None
) -> IssuedToken:
    """A new token for any account (the admin's `create_token` command; the API checks roles
    first through `api_token_issue`)."""
    if not isinstance(name, str) or len(name) > NAME_MAX or "\x00" in name:
        raise ValidationFailed(f"a name of at most {NAME_MAX} characters", field="name")
    if lifetime is None:
        lifetime = timedelta(days=settings.API_TOKEN_LIFETIME_DAYS)
    if lifetime <= timedelta(0):
        raise ValidationFailed("a token must live a positive time", field="days")
    key = key_new()
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key_prefix(key),
        digest=key_digest(key),
        created_at=now,
        expires_at=now + lifetime,
    )
    return IssuedToken(token=token, key=key)


def api_token_issue(*, user: AbstractBaseUser, name: str = "") -> IssuedToken:
    """A token for a caller who gave their password: lead, ml and admin accounts only."""
    if not token_issue_allowed(user):
        roles = ", ".join(role.value for role in Role if role in TOKEN_ROLES)
        raise Forbidden(
            f"API tokens are issued to {roles} accounts only; annotators label in the browser",
            field="username",
            code="token_not_for_role",
        )
    return api_token_create(user=user, name=name)


def api_token_revoke(*, token_id: int, user: AbstractBaseUser | None = None) -> ApiToken:
    """Revoke one token (of `user`, when given); revoking twice keeps the first time."""
    tokens = ApiToken.objects.filter(pk=token_id)
    if user is not None:
        tokens = tokens.filter(user=user)
    tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    token = tokens.first()
    if token is None:
        raise NotFound(f"no token {token_id}", field="token")
    return token


def api_tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    """Revoke every live token of the account; how many were live."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
