"""Request ids and structured (JSON) logs.

`RequestIdMiddleware` takes the caller's `X-Request-ID` (the reverse proxy's; a well-formed one:
letters, digits, `.`, `_`, `-`, at most 128) or makes one, keeps it for the request's log lines
and returns it in the response's `X-Request-ID`. `RequestIdFilter` puts it on every log record
(`request_id`, "-" outside a request). With LOG_FORMAT=json (settings.LOGGING) `JsonFormatter`
writes each record as one JSON object per line; the default, `text`, stays readable in
development.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,128}")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def request_id() -> str:
    """The current request's id; "-" outside a request."""
    return _request_id.get()


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get(HEADER, "")
        rid = sent if _WELL_FORMED.fullmatch(sent) else uuid.uuid4().hex
        request.request_id = rid
        # Kept until the response is closed (request_finished), so that Django's own line for
        # a 4xx or 5xx answer, written after the middleware returned, carries it too.
        _request_id.set(rid)
        response = self.get_response(request)
        response[HEADER] = rid
        return response


@receiver(request_finished)
def _request_id_forget(sender: object, **kwargs: object) -> None:
    _request_id.set("-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id,
    and the traceback as `exc_info` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
