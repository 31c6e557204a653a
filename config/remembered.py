"""Per-process memory of a successful check, for a short interval (hot API paths).

The labeling loop and the scoring API authenticate every request with a token: one database
round trip each time, a sizeable share of a request that does little else. Their successes
are kept here for `settings.AUTH_REMEMBER_SECONDS` (1 s), so a deleted token, a deactivated
account or a removed role stops working everywhere within that interval. Failures are never
remembered. Bounded (cleared when full), thread-safe, and emptied in a forked child.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from django.conf import settings

MAX_ENTRIES = 1024

_all: weakref.WeakSet[Remembered] = weakref.WeakSet()


class Remembered:
    """`seconds`: how long an entry lasts (default: settings.AUTH_REMEMBER_SECONDS)."""

    def __init__(self, *, seconds: float | None = None) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._items: dict[Any, tuple[float, Any]] = {}
        _all.add(self)

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: Any, value: Any) -> None:
        ttl = float(settings.AUTH_REMEMBER_SECONDS if self._seconds is None else self._seconds)
        if ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[key] = (time.monotonic() + ttl, value)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def remembered_forget_all() -> None:
    """Forget every remembered success of this process (tests, after changing accounts)."""
    for memory in list(_all):
        memory.clear()


def _after_fork() -> None:
    for memory in list(_all):
        memory._lock = threading.Lock()
        memory._items = {}


os.register_at_fork(after_in_child=_after_fork)
