"""What a statement's plan read, as the API runs it (prepared, generic plan), for the tests that
bound the labeling statements' cost whatever the statistics say."""

import json

import psycopg
from django.db import connection


def rows_read(sql: str, params: dict, table: str, *, filtered: bool = False) -> int:
    """Rows of `table` the statement's generic plan returned from its scans over all loops;
    with `filtered`, also those the scans read and filtered out."""
    connection.ensure_connection()
    raw = connection.connection
    raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    with psycopg.Cursor(raw) as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params, prepare=True)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def walk(node) -> int:
        own = 0
        if node.get("Relation Name") == table and "Scan" in node["Node Type"]:
            read = node["Actual Rows"]
            if filtered:
                read += node.get("Rows Removed by Filter", 0)
                read += node.get("Rows Removed by Index Recheck", 0)
            # PostgreSQL 18 (the embedded server) reports rows per loop as a rounded average.
            own = round(read * node["Actual Loops"])
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])
