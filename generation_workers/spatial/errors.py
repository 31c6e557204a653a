"""The one error type of the spatial prompt engine.

Every rejection (a bad structured prompt, template, relation phrase, build spec or import line)
is a ``PromptSpecError`` that names the offending field with a path such as
``relations[2].relation`` or ``templates[0]``, so API and admin callers can show it as is.
"""

from __future__ import annotations

from typing import Any


class PromptSpecError(ValueError):
    """A spatial prompt, template or spec is invalid.

    ``field`` is a path into the offending input (``objects[1].count``, ``template``, ``size``),
    ``value`` the offending value and ``message`` a sentence for people. ``str(error)`` is
    ``"<field>: <message>"``.
    """

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.value = value
        self.message = message

    def __reduce__(self) -> tuple[type[PromptSpecError], tuple[str, Any, str]]:
        # Exceptions cross process boundaries (Celery results, multiprocessing); keep the
        # three-argument constructor picklable.
        return (type(self), (self.field, self.value, self.message))
