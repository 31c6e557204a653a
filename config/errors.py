"""Domain errors shared by every app's services.

Services raise these; the API's exception handler (config/api.py), admin actions and
management commands turn them into a 4xx JSON body, a message or a command error. `field`
names the offending input so the caller can say exactly what to fix.
"""

from typing import Any


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return body

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail


class ValidationFailed(DomainError):
    status_code = 400
    code = "invalid"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    """A state transition that the current state does not allow (a full pair, a frozen version)."""

    status_code = 409
    code = "conflict"
