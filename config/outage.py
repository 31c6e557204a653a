"""What a request gets while PostgreSQL cannot be reached: a 503 that says when to come back.

A refused or lost database connection is not a bug in the request: the labeling page's outbox,
RL trainers and scripts should keep their work and retry, so every /api/ URL answers
`503 {"error": "database_unavailable", "detail": ...}` with `Retry-After`, and a page answers a
plain 503 page (no traceback), whichever part of the request reached the database first.

Only connection-level failures count (`database_unreachable`): a statement timeout, a deadlock,
a full disk or bad data is about the request and stays what it was (a 4xx or a 500).

Two paths lead here. A failure inside a view (which is where sessions and tokens are first
read: authentication is lazy, and DRF authenticates in the view) reaches `process_exception`.
A failure inside a middleware (a session saved on the way out) has already been turned into a
500 by Django's per-middleware wrapper by the time it passes this one, so the
`got_request_exception` signal marks the request and the 500 is replaced on the way out.
"""

import logging
import sys
from collections.abc import Callable

import psycopg
from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist, loader

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
# States the server reports when it cannot serve a connection at all: an administrator's or a
# crash's shutdown, a server still starting or stopping, no connection slot left (class 08,
# connection exceptions, is matched by prefix).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_MARK = "_spatialprefs_database_unavailable"
_FALLBACK_PAGE = (
    "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
    "<p>The service cannot reach its database right now. Please try again in a moment.</p>"
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means no usable connection to PostgreSQL (refused, lost, shut down)."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if not isinstance(cause, psycopg.Error):
        return False
    if isinstance(exc, InterfaceError):
        # psycopg's own interface errors are mistakes in the caller ("the cursor is closed")
        # unless the connection under them is gone.
        return any(
            conn.connection is not None and conn.connection.closed
            for conn in connections.all(initialized_only=True)
        )
    state = cause.sqlstate
    # No state: the client library failed to connect, or lost the socket mid-statement.
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    retry_after = settings.DATABASE_UNAVAILABLE_RETRY_AFTER
    if request.path_info.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(
            {
                "error": "database_unavailable",
                "detail": "The database cannot be reached right now; "
                f"try again in {retry_after} seconds.",
            },
            status=503,
        )
    else:
        # Rendered without the request: context processors would read the session again.
        try:
            page = loader.render_to_string("503.html", {"retry_after": retry_after})
        except TemplateDoesNotExist:
            page = _FALLBACK_PAGE
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def _log(request: HttpRequest, exc: BaseException) -> None:
    # One line per request, not Django's traceback: an outage would repeat it for every call.
    cause = exc.__cause__ or exc
    log.warning(
        "db.unavailable path=%s error=%s %s",
        request.path,
        type(cause).__name__,
        str(cause).splitlines()[0] if str(cause) else "",
    )


def _mark_request(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    # Sent from inside Django's `except` block, so the exception is the one being handled.
    exc = sys.exc_info()[1]
    if request is not None and exc is not None and database_unreachable(exc):
        setattr(request, _MARK, True)


class DatabaseUnavailableMiddleware:
    """Installed outside every middleware that may read the database (sessions, auth...)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_mark_request, dispatch_uid="config.outage")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, _MARK, False):
            return database_unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unreachable(exception):
            return None
        _log(request, exception)
        return database_unavailable_response(request)
