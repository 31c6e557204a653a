"""Optional error reporting to Sentry: on when SENTRY_DSN is set (settings call `sentry_init`).

sentry-sdk is not a dependency: it is imported only when a DSN is configured, and a DSN
without the package stops the process at start-up with what to do, instead of losing errors
silently.
"""

from __future__ import annotations

import importlib


def sentry_init(
    dsn: str, *, environment: str | None = None, traces_sample_rate: float = 0.0
) -> bool:
    """Start Sentry's SDK (its Django and Celery integrations enable themselves) when `dsn` is
    set; False when it is not."""
    if not dsn:
        return False
    try:
        sentry_sdk = importlib.import_module("sentry_sdk")
    except ImportError as exc:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "SENTRY_DSN is set but the sentry-sdk package is not installed: install it in this "
            "environment (pip install 'sentry-sdk[django,celery]') or unset SENTRY_DSN."
        ) from exc
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,  # no usernames, emails or IP addresses of annotators
    )
    return True
