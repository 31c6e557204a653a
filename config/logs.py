"""Request ids and structured (JSON) logs, for web requests and Celery tasks alike.

`RequestIdMiddleware` takes the caller's `X-Request-ID` (the reverse proxy's; a well-formed one:
letters, digits, `.`, `_`, `-`, at most 128) or makes one, keeps it for the request's log lines
and returns it in the response's `X-Request-ID`. `RequestIdFilter` puts it on every log record
(`request_id`, "-" outside a request and a task). With LOG_FORMAT=json (settings.LOGGING)
`JsonFormatter` writes each record as one JSON object per line; the default, `text`, stays
readable in development.

Tasks (signals connected by config/celery.py): a task published while a request or another task
runs carries its id in the message's `request_id` header (`task_request_id_attach`); the worker
keeps it, or makes one for a task published by nobody's request (Celery beat), for the task's
log records, which also name the task (`task_id`, `task_name`; `task_log_context_enter` and
`_leave`). `worker_logs_configure` gives the worker's and beat's handlers (which Celery sets up,
with their --loglevel and --logfile) the same filter and, with LOG_FORMAT=json, the same format.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"  # the Celery message header that carries it
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,128}")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_task: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("task", default=None)
_task_tokens: dict[str, tuple[contextvars.Token, contextvars.Token]] = {}


def request_id() -> str:
    """The current request's (or Celery task's) id; "-" outside both."""
    return _request_id.get()


def _request_id_kept_or_made(sent: object) -> str:
    """The id a caller sent, when well-formed; else a new one."""
    if isinstance(sent, str) and _WELL_FORMED.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = _request_id_kept_or_made(request.headers.get(HEADER))
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


def task_request_id_attach(headers: dict | None = None, **kwargs: object) -> None:
    """Celery's before_task_publish: the message carries the id of the request or task that
    publishes it (none outside both: the worker then makes one)."""
    rid = _request_id.get()
    if headers is not None and rid != "-":
        headers.setdefault(TASK_HEADER, rid)


def task_log_context_enter(task_id: str = "", task: Any = None, **kwargs: object) -> None:
    """Celery's task_prerun: the task's log records carry its request id, id and name. A task
    run eagerly inside a request or task keeps that one's id."""
    request = getattr(task, "request", None)
    sent = request.get(TASK_HEADER) if request is not None else None
    current = _request_id.get()
    if sent is None and current != "-" and getattr(request, "is_eager", False):
        rid = current
    else:
        rid = _request_id_kept_or_made(sent)
    _task_tokens[task_id] = (
        _request_id.set(rid),
        _task.set((task_id, getattr(task, "name", "") or "")),
    )


def task_log_context_leave(task_id: str = "", **kwargs: object) -> None:
    """Celery's task_postrun: back to what was there before (nothing, or the eager caller's)."""
    tokens = _task_tokens.pop(task_id, None)
    if tokens is not None:
        _request_id.reset(tokens[0])
        _task.reset(tokens[1])


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        task = _task.get()
        if task is not None:
            record.task_id, record.task_name = task
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id,
    `task_id` and `task_name` inside a Celery task, and the traceback as `exc_info` when there
    is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if getattr(record, "task_id", None):
            entry["task_id"] = record.task_id
            entry["task_name"] = getattr(record, "task_name", "")
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def worker_logs_configure(logger: logging.Logger | None = None, **kwargs: object) -> None:
    """Celery's after_setup_logger and after_setup_task_logger (worker and beat): their handlers
    get RequestIdFilter and, with LOG_FORMAT=json, JsonFormatter, like the web's."""
    from django.conf import settings

    for handler in logger.handlers if logger is not None else ():
        handler.addFilter(RequestIdFilter())
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
