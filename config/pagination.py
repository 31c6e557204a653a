"""The API's pagination: DRF's limit/offset, with both parameters checked.

DRF reads any number of digits: a huge `offset` or `limit` reached PostgreSQL's OFFSET/LIMIT
and overflowed its bigint (a 500), and text or a negative number silently became the default.
Here `limit` is an integer of at least 1, capped at MAX_LIMIT (the largest page), and `offset`
an integer from 0 to the bigint's maximum; anything else is a 400 naming the parameter. The
OpenAPI schema says so.
"""

from __future__ import annotations

from rest_framework import pagination

from config.input_checks import BIGINT_MAX, query_integer_read

MAX_LIMIT = 1000


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None or raw == "":
            return self.default_limit
        limit = query_integer_read(raw, field=self.limit_query_param, minimum=1)
        return min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None or raw == "":
            return 0
        return query_integer_read(raw, field=self.offset_query_param, minimum=0)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
        limit["description"] = (
            f"Number of results to return per page (at most {self.max_limit}; "
            "larger values are capped)."
        )
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}
        return [limit, offset]
