"""How JSON and forms from outside are read: DRF's parsers, with what they return checked
before any view, and the JSON fields of API serializers and admin forms.

A body of deeply nested brackets made Python's JSON reader raise RecursionError (a 500 on
every JSON endpoint, signed in or not); a NUL character or a lone surrogate anywhere in a body
reached PostgreSQL (which refuses both) as a 500 too. Here both are a 400 naming the place
(`filter_spec.queues[0]`, `body`), see `config.input_checks`. Malformed JSON (NaN and Infinity
included) keeps DRF's `parse_error` code and names the body. Form fields (urlencoded or
multipart) are checked for NUL characters the same way (they cannot carry a lone surrogate:
Django decodes them with replacement), and `JSONField` (serializers) and `JSONFormField` (the
admin's forms) read JSON text in a field with the same checks.

Every DRF view reads its body through these classes (DEFAULT_PARSER_CLASSES, and the views
that list their parsers name them); tests/foundation/test_bad_input_api.py checks that no view
is left out.
"""

from __future__ import annotations

import codecs
from typing import Any

from django import forms
from django.conf import settings
from django.forms.fields import InvalidJSONInput, JSONString
from rest_framework import parsers, serializers

from config.errors import ValidationFailed
from config.input_checks import json_check, json_loads, text_problem


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                f"malformed JSON: {exc}", field="body", code="parse_error"
            ) from None
        return json_loads(text, field="")


def _form_check(data) -> None:
    """Every field name and value of a QueryDict as text PostgreSQL can store."""
    for key, values in data.lists():
        problem = text_problem(key)
        if problem is not None:
            raise ValidationFailed(f"a field name {problem}", field=repr(key)[1:-1])
        for value in values:
            problem = text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise ValidationFailed(problem, field=key)


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _form_check(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _form_check(parsed.data)
        return parsed


class JSONField(serializers.JSONField):
    """DRF's JSONField, whose JSON text sent in a form field goes through the same checks as a
    JSON body (DRF's own reader recursed without a bound and let NUL reach jsonb)."""

    def to_internal_value(self, data: Any) -> Any:
        if self.binary or getattr(data, "is_json_string", False):
            if isinstance(data, bytes):
                data = data.decode("utf-8", errors="replace")
            return json_loads(data, field=self.field_name)
        return json_check(super().to_internal_value(data), field=self.field_name)


class JSONFormField(forms.JSONField):
    """Django's form JSONField, reading its text with the same checks (Django's reader recursed
    without a bound, and let NUL and lone surrogates reach the database)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values:
            return super().to_python(value)
        if isinstance(value, (list, dict, int, float, JSONString)):
            return value
        try:
            converted = json_loads(value, field="")
        except ValidationFailed as exc:
            where = "" if exc.field == "body" else f"{exc.field}: "
            raise forms.ValidationError(f"{where}{exc.detail}", code="invalid") from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return json_loads(data, field="")
        except ValidationFailed:
            return InvalidJSONInput(data)
