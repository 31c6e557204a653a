"""`Authorization: Token <key>`: the key's digest, looked up once, and the token's state checked.

The lookup is one prepared statement joining the token to its user (config/db.py: the ORM's
query building was the largest single cost of a labeling request). The user comes back with
only the fields a request reads; others load on access.

`ApiTokenAuthentication` is the one token authentication of the API: the REST framework's
default, so the labeling loop, the scoring API and every other operation use it. A success is
kept per process for AUTH_REMEMBER_SECONDS (config/remembered.py), so a client's many requests
mostly skip the round trip, and a revoked token, a deactivated account or an expiry takes
effect everywhere within that interval; failures are never remembered. The role check
(config/permissions.py) keeps a token user's roles on the remembered token, so they are read
again when the token is.

A token's last use is written at most once a minute per process (a write per request would
cost the hot paths a round trip).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.keys import key_digest
from config import db
from config.remembered import Remembered

LAST_USE_EVERY = timedelta(seconds=60)
KEY_MAX_CHARS = 200  # ours are 43; longer is not a key

_USER_FIELDS = {"id", "username", "is_active", "is_staff", "is_superuser"}
_TOKEN_FIELDS = ["id", "expires_at", "revoked_at", "last_used_at"]


@functools.cache
def _user_fields() -> list:
    """The user fields read, in the model's field order (what Model.from_db expects)."""
    return [f for f in get_user_model()._meta.concrete_fields if f.attname in _USER_FIELDS]


@functools.cache
def _token_sql() -> str:
    from accounts.models import ApiToken  # the REST framework imports this module early

    user = get_user_model()
    columns = ", ".join(
        [f"u.{f.column}" for f in _user_fields()] + [f"t.{name}" for name in _TOKEN_FIELDS]
    )
    return (
        f"SELECT {columns} FROM {ApiToken._meta.db_table} t "
        f"JOIN {user._meta.db_table} u ON u.{user._meta.pk.column} = t.user_id "
        "WHERE t.digest = %(digest)s"
    )


def _token_found(digest: str):
    """(user, token) for the digest, or None: one prepared statement."""
    from accounts.models import ApiToken

    rows = db.statement_run(_token_sql(), {"digest": digest})
    if not rows:
        return None
    width = len(_user_fields())
    user = get_user_model().from_db(
        connection.alias, [f.attname for f in _user_fields()], rows[0][:width]
    )
    token = ApiToken(user_id=user.pk, **dict(zip(_TOKEN_FIELDS, rows[0][width:], strict=True)))
    return user, token


def _last_use_note(token, now: datetime) -> None:
    from accounts.models import ApiToken

    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def token_credentials_check(key: str):
    """(user, token) for a key, or AuthenticationFailed saying why."""
    if len(key) > KEY_MAX_CHARS:
        raise exceptions.AuthenticationFailed("Invalid token.")
    found = _token_found(key_digest(key))
    if found is None:
        raise exceptions.AuthenticationFailed("Invalid token.")
    user, token = found
    now = timezone.now()
    if token.revoked_at is not None:
        raise exceptions.AuthenticationFailed("Token revoked.")
    if token.expires_at <= now:
        raise exceptions.AuthenticationFailed("Token expired.")
    if not user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    _last_use_note(token, now)
    return user, token


_remembered = Remembered()  # key -> (user, token)


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Token <key>`, its success remembered for AUTH_REMEMBER_SECONDS."""

    keyword = "Token"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != self.keyword.lower().encode():
            return None
        if len(auth) == 1:
            raise exceptions.AuthenticationFailed("Invalid token header. No credentials provided.")
        if len(auth) > 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header. Token string should not contain spaces."
            )
        try:
            key = auth[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(
                "Invalid token header. Token string should not contain invalid characters."
            ) from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        found = _remembered.get(key)
        if found is not None and found[1].expires_at > timezone.now():
            return found
        found = token_credentials_check(key)
        _remembered.put(key, found)
        return found

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'API token, sent as "Token <key>" (POST /api/auth/token/)',
        }
