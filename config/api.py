"""The API's shared parts: the one exception handler (who may call what: config/permissions.py).

Every error leaves as {"error": code, "detail": message} (plus "field" where one is at fault).
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError


def _flatten(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    """The first offending field and its message from a DRF error structure."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                name = prefix or None
            return _flatten(value, name or "")
    if isinstance(detail, list) and detail:
        if all(not isinstance(item, (dict, list)) for item in detail):
            return (prefix or None, " ".join(str(item) for item in detail))
        for index, item in enumerate(detail):
            if item:
                return _flatten(item, f"{prefix}[{index}]")
    return (prefix or None, str(detail))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _flatten(exc.detail)
        body: dict[str, Any] = {"error": "invalid", "detail": message}
        if field:
            body["field"] = field
            body["detail"] = f"{field}: {message}"
        body["errors"] = exc.detail
        response.data = body
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = {"error": code, "detail": str(exc.detail)}
    if response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR:
        return None
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for a URL no route matches (`handler404`): under /api/ the error body every
    API answer has (a path id that is not a number, a slug with other characters), elsewhere
    Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": "no such API endpoint"}, status=404)
    return defaults.page_not_found(request, exception)
