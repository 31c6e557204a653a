"""Authentication of the scoring endpoint, remembered per serving process.

RL trainers call `/api/reward/score` many times a second with one token. DRF's token
authentication and the role check cost two queries per request (several percent of a small
model's forward pass on these machines); here their success is kept per process for
REWARD_SCORING_REFRESH_SECONDS (1 s, as the lookup of the promoted model), so a deleted token,
a deactivated account or a removed role stops working everywhere within that interval.
Failures are never remembered: they are checked again on every request.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import IsML

MAX_ENTRIES = 1024


class _Remembered:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: Any, value: Any) -> None:
        ttl = float(getattr(settings, "REWARD_SCORING_REFRESH_SECONDS", 1.0))
        if ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_tokens = _Remembered()
_roles = _Remembered()


def scoring_auth_forget() -> None:
    """Forget this process's remembered tokens and roles."""
    _tokens.clear()
    _roles.clear()


def _after_fork() -> None:
    global _tokens, _roles
    _tokens, _roles = _Remembered(), _Remembered()


os.register_at_fork(after_in_child=_after_fork)


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
