"""Per-process memory of a successful check, for a short interval (hot API paths).

Every API request with a token is authenticated (accounts/authentication.py): one database
round trip each time, a sizeable share of a request that does little else. Successes are kept
here for `settings.AUTH_REMEMBER_SECONDS` (1 s), so a deleted token, a deactivated account or a
removed role stops working everywhere within that interval. An entry's age is judged against
the interval when it is read, so a shorter setting takes effect at once. Failures are never
remembered. Bounded (cleared when full), thread-safe, and emptied in a forked child.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings

MAX_ENTRIES = 1024

_all: weakref.WeakSet[Remembered] = weakref.WeakSet()


class Remembered:
    """`seconds`: how long an entry lasts (default: settings.AUTH_REMEMBER_SECONDS, read at
    each use); `clock`: seconds from any fixed point (tests pass their own)."""

    def __init__(
        self, *, seconds: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[Any, tuple[float, Any]] = {}
        _all.add(self)

    def _ttl(self) -> float:
        return float(settings.AUTH_REMEMBER_SECONDS if self._seconds is None else self._seconds)

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and self._clock() - hit[0] < self._ttl():
            return hit[1]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self._ttl() <= 0:
            return
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[key] = (self._clock(), value)

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
