"""Project-level API views: health (liveness, readiness) and the caller's identity."""

import asyncio

from django.conf import settings
from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.observability import readiness_failures
from config.outage import database_unreachable
from config.roles import Role, user_has_role

_HEALTH = inline_serializer(
    "Health", {"status": serializers.CharField(), "database": serializers.CharField()}
)


class LivenessApi(APIView):
    authentication_classes: list = []  # who may call: the role matrix (everyone)

    @extend_schema(responses=inline_serializer("Liveness", {"status": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        """200 `{"status": "ok"}` while the process answers; reads no database, Redis or
        storage, so an outage of theirs does not restart it (that is readiness's job)."""
        return Response({"status": "ok"})


class HealthApi(APIView):
    """Readiness: PostgreSQL, Redis (the broker, when it is Redis) and the default storage."""

    authentication_classes: list = []  # who may call: the role matrix (everyone)

    @extend_schema(responses={200: _HEALTH, 503: _HEALTH})
    def get(self, request: Request) -> Response:
        """200 `{"status": "ok", "database": "postgresql"}` once the database answered a query,
        Redis a ping and the storage a write, read and delete; 503 `{"status": "unavailable",
        "<dependency>": "unreachable"}` naming each that did not (`database`, `redis`,
        `storage`), with Retry-After."""
        failing = []
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            if not database_unreachable(exc):
                raise
            failing.append("database")
        failing += asyncio.run(readiness_failures())
        if failing:
            return Response(
                {"status": "unavailable", **dict.fromkeys(failing, "unreachable")},
                status=503,
                headers={"Retry-After": str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)},
            )
        return Response({"status": "ok", "database": "postgresql"})


class MeApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "username": serializers.CharField(),
                "roles": serializers.ListField(child=serializers.CharField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        roles = [r.value for r in Role if r is not Role.ADMIN and user_has_role(request.user, r)]
        if request.user.is_superuser:
            roles = [Role.ADMIN.value]
        return Response({"username": request.user.get_username(), "roles": roles})
