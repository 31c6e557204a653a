"""What a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE, for all three logins).

django-axes counts failed logins per (username, client address); past LOGIN_FAILURE_LIMIT the
pair is locked for LOGIN_COOLOFF_MINUTES, and every attempt meanwhile, right password or not,
gets this: JSON 429 on the API, a page saying so on the two login pages. Either way with
Retry-After: an attempt during the lockout starts the cool-off again, so it is the whole
cool-off.
"""

from __future__ import annotations

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def _is_api(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "api" in match.namespaces
    return request.path.startswith("/api/")


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    cool_off = get_cool_off(request)
    retry_after = int(cool_off.total_seconds()) if cool_off else None
    if retry_after:
        minutes = max(1, round(retry_after / 60))
        detail = (
            "too many failed logins for this account from your address: "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}"
        )
    else:
        detail = "too many failed logins for this account: an admin must unlock it"
    if _is_api(request):
        body = {"error": "locked_out", "detail": detail}
        if retry_after:
            body["retry_after"] = retry_after
        response: HttpResponse = JsonResponse(body, status=429)
    else:
        response = render(
            request,
            "accounts/locked_out.html",
            {"detail": detail, "lifts": bool(retry_after)},
            status=429,
        )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
