"""Authentication of the scoring endpoint, remembered per serving process.

RL trainers call `/api/reward/score` many times a second with one token. DRF's token
authentication and the role check cost two queries per request (several percent of a small
model's forward pass on these machines); here their success is kept per process for
AUTH_REMEMBER_SECONDS (1 s; config/remembered.py, as the labeling loop does), so a deleted
token, a deactivated account or a removed role stops working everywhere within that interval.
Failures are never remembered: they are checked again on every request.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import IsML
from config.remembered import Remembered

_tokens = Remembered()
_roles = Remembered()


def scoring_auth_forget() -> None:
    """Forget this process's remembered tokens and roles."""
    _tokens.clear()
    _roles.clear()


class ScoringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF checks it, remembered for the refresh interval."""

    def authenticate_credentials(self, key: str):
        found = _tokens.get(key)
        if found is not None:
            return found
        found = super().authenticate_credentials(key)
        _tokens.put(key, found)
        return found


class ScoringTokenScheme(OpenApiAuthenticationExtension):
    """The schema's description of the scoring endpoint's token (the same header as DRF's)."""

    target_class = "training_bridge.apis.reward.auth.ScoringTokenAuthentication"
    name = "scoringTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token-based authentication with required prefix "Token"',
        }


class IsMLScoring(IsML):
    """The `ml` role (or an admin), remembered per user for the refresh interval."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        if _roles.get(user.pk):
            return True
        allowed = super().has_permission(request, view)
        if allowed:
            _roles.put(user.pk, True)
        return allowed
