"""Input PostgreSQL can hold: text without NUL or lone surrogates, JSON of bounded depth and
integers within its bigint. Shared by the API's parser and pagination and by the services that
take free text or JSON specs.

Why each check: PostgreSQL refuses a NUL character in text and in jsonb (`\\u0000`); psycopg
cannot encode a lone surrogate (a `\\ud800` escape in JSON decodes to one) even in a query's
parameter; a text larger than a btree index row (about 2.7 KB) cannot sit under a unique
index; Python's JSON reader (and any walk of what it returns) recurses once per nesting level;
an OFFSET or id beyond 2**63 - 1 overflows the database integer. Each of these surfaced as a
500; checked here first they are a 400 naming the field (a JSON path such as
`filter_spec.queues[0]`), before anything is written.
"""

from __future__ import annotations

import json
from typing import Any

from config.errors import ValidationFailed

# Deeper than any spec, config or request body of the platform; shallow enough that nothing
# downstream (serializers, jsonb, our own walks) nears Python's recursion limit.
MAX_JSON_DEPTH = 64
BIGINT_MAX = 2**63 - 1

NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_MESSAGE = (
    "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid text"
)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return NUL_MESSAGE
    if value.isascii():  # a flag of the string: large base64 images need no copy
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


def text_check(
    value: str, *, field: str, max_chars: int | None = None, max_bytes: int | None = None
) -> str:
    """`value` unchanged if it can be stored and is at most `max_chars` characters and
    `max_bytes` bytes of UTF-8 long (a limit in bytes protects an index row)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValidationFailed(problem, field=field)
    if max_chars is not None and len(value) > max_chars:
        raise ValidationFailed(
            f"is {len(value)} characters long; at most {max_chars} are accepted", field=field
        )
    if max_bytes is not None and len(value) > max_bytes // 4:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            raise ValidationFailed(
                f"is {size} bytes long in UTF-8; at most {max_bytes} are accepted", field=field
            )
    return value


def _key_name(key: str) -> str:
    # A bad key is named escaped, so the error body itself stays valid text.
    return key if text_problem(key) is None else repr(key)[1:-1]


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{_key_name(key)}" if path else _key_name(key)


def json_check(value: Any, *, field: str = "", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`value` (what a JSON reader returned) unchanged if every key and string in it can be
    stored and it nests at most `max_depth` deep; else a ValidationFailed naming the first bad
    place in document order (`field` is the path of `value` itself; "" for a whole body)."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:  # iterative: a deep value must not recurse here either
        item, path, depth = stack.pop()
        if isinstance(item, str):
            text_check(item, field=path or "body")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= max_depth:
            raise ValidationFailed(
                f"nests deeper than {max_depth} levels of objects and lists", field=path or "body"
            )
        if isinstance(item, dict):
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                name = _child(path, str(key))
                problem = text_problem(str(key))
                if problem is not None:
                    raise ValidationFailed(f"the key {problem}", field=name)
                children.append((child, name))
        else:
            children = [(child, _child(path, index)) for index, child in enumerate(item)]
        stack.extend((child, name, depth + 1) for child, name in reversed(children))
    return value


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def json_loads(raw: str | bytes, *, field: str) -> Any:
    """JSON text -> its value, checked as `json_check` does, with paths under `field` ("" for
    a whole request body, whose malformed text is then named `body`). Malformed text (NaN and
    Infinity included: not JSON, and jsonb refuses them) and too deep a nesting keep DRF's
    `parse_error` code."""
    try:
        value = json.loads(raw, parse_constant=_not_a_number)
    except RecursionError:
        raise ValidationFailed(
            f"nests deeper than {MAX_JSON_DEPTH} levels of objects and lists",
            field=field or "body",
            code="parse_error",
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise ValidationFailed(
            f"malformed JSON: {exc}", field=field or "body", code="parse_error"
        ) from None
    return json_check(value, field=field)


def is_row_id(value: object) -> bool:
    """Whether `value` (read from JSON) is an integer a bigint primary key can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= BIGINT_MAX


def integer_check(value: int, *, field: str, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"must be an integer from {minimum} to {maximum}", field=field)
    return value


def query_integer_read(raw: str, *, field: str, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    """A query parameter that must be a decimal integer within [minimum, maximum]."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise ValidationFailed(f"must be an integer from {minimum} to {maximum}", field=field)
    return integer_check(int(text), field=field, minimum=minimum, maximum=maximum)
