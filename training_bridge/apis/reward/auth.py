"""Authentication of the scoring endpoint, remembered per serving process.

RL trainers call `/api/reward/score` many times a second with one token. The token check
(accounts/authentication.py) and the role check (config/permissions.py) cost a query each per
request (several percent of a small model's forward pass on these machines); here their
success is kept per process for AUTH_REMEMBER_SECONDS (1 s; config/remembered.py, as the
labeling loop does), so a revoked or expired token, a deactivated account or a removed role
stops working everywhere within that interval. Failures are never remembered: they are checked
again on every request.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from config.permissions import RolePermission
from config.remembered import Remembered

_tokens = Remembered()
_roles = Remembered()


def scoring_auth_forget() -> None:
    """Forget this process's remembered tokens and roles."""
    _tokens.clear()
    _roles.clear()


class ScoringTokenAuthentication(ApiTokenAuthentication):
    """`Authorization: Token <key>`, checked as everywhere, remembered for the interval."""

    memory = _tokens


class ScoringTokenScheme(OpenApiAuthenticationExtension):
    """The schema's description of the scoring endpoint's token (the same header)."""

    target_class = "training_bridge.apis.reward.auth.ScoringTokenAuthentication"
    name = "scoringTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token-based authentication with required prefix "Token"',
        }


class ScoringRolePermission(RolePermission):
    """The role matrix's row for scoring, its success remembered per user for the interval."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user.is_authenticated:
            return super().has_permission(request, view)
        if _roles.get(user.pk):
            return True
        allowed = super().has_permission(request, view)
        if allowed:
            _roles.put(user.pk, True)
        return allowed
