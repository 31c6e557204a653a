"""Authentication of the labeling loop: sessions (the browser) and API tokens.

The token check is DRF's, with the lookup done by one prepared statement on PostgreSQL instead
of the ORM query (the ORM's query building was the largest single cost of a labeling request),
and its success remembered per process for AUTH_REMEMBER_SECONDS (config/remembered.py): an
annotator's requests then mostly skip the round trip. Every labeling statement checks the
queue's access list itself. The user comes back with only the fields a labeling request
reads; others load on access.
"""

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token

from config import db
from config.remembered import Remembered

_USER_FIELDS = {"id", "username", "is_active", "is_staff", "is_superuser"}


@functools.cache
def _user_fields() -> list:
    """The fields read, in the model's field order (what Model.from_db expects)."""
    return [f for f in get_user_model()._meta.concrete_fields if f.attname in _USER_FIELDS]


@functools.cache
def _token_sql() -> str:
    user = get_user_model()
    columns = ", ".join(f"u.{f.column}" for f in _user_fields())
    return (
        f"SELECT {columns} FROM {Token._meta.db_table} t "
        f"JOIN {user._meta.db_table} u ON u.{user._meta.pk.column} = t.user_id "
        "WHERE t.key = %(key)s"
    )


_tokens = Remembered()


class LabelingTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        found = _tokens.get(key)
        if found is not None:
            return found
        found = self._credentials_checked(key)
        _tokens.put(key, found)
        return found

    def _credentials_checked(self, key):
        if not db.statements_available():
            return super().authenticate_credentials(key)
        rows = db.statement_run(_token_sql(), {"key": key})
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = get_user_model().from_db(
            connection.alias, [f.attname for f in _user_fields()], rows[0]
        )
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user_id=user.pk)


LABELING_AUTHENTICATION = [SessionAuthentication, LabelingTokenAuthentication]


class LabelingTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of LabelingTokenAuthentication (the same header as DRF's)."""

    target_class = LabelingTokenAuthentication
    name = "labelingTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'API token, sent as "Token <key>"',
        }
