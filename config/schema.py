"""The OpenAPI schema's shared part: the error answers every operation can give.

The one exception handler (config/api.py) answers bad input with a 400, a missing login or
role with a 401 or 403 and an unknown id with a 404, all as {"error", "detail", "field"}. Views
document the errors particular to them (409, 413, 415) themselves; this drf-spectacular
postprocessing hook adds the common ones each operation lacks, so that the schema is true for
every answer (tests/foundation/test_schemathesis.py checks every status against it):
400 where the operation takes parameters or a body, 401 and 403 where it needs a signed-in
user, 404 where its path names an object.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error of the API.",
    "properties": {
        "error": {"type": "string", "description": "A code: invalid, not_found, conflict..."},
        "detail": {"type": "string", "description": "A sentence for people."},
        "field": {"type": "string", "description": "The offending input, as a JSON path."},
        "errors": {"type": "object", "description": "Every field's errors (serializers)."},
    },
    "required": ["error", "detail"],
}
_DESCRIPTIONS = {
    "400": "Bad input; `field` names it.",
    "401": "Not signed in.",
    "403": "Not signed in, or not available to your role.",
    "404": "No such object.",
}
_METHODS = ("get", "put", "post", "patch", "delete")


def _common_errors(operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    codes = []
    if parameters or "requestBody" in operation:
        codes.append("400")
    if {} not in operation.get("security", [{}]):  # `{}`: anonymous requests are allowed
        codes += ["401", "403"]
    if any(p.get("in") == "path" for p in parameters):
        codes.append("404")
    return codes


def error_responses_add(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (POSTPROCESSING_HOOKS)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    error = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in _common_errors(operation):
                responses.setdefault(
                    code,
                    {
                        "description": _DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": error}},
                    },
                )
    return result
