"""One-statement database calls on PostgreSQL: prepared once per connection, no BEGIN/COMMIT.

The hot paths (labeling next/submit/heartbeat, the token lookup) each run as ONE
statement: the checks, row locks and writes are CTEs of a single statement, so it is its
own transaction in autocommit and costs one round trip. `statement_run` runs it on Django's own
connection with server-side binding (a plain psycopg cursor, not Django's client-side one), so
psycopg prepares it once per connection and PostgreSQL plans it once instead of on every call;
Django's connection handling (CONN_MAX_AGE, error tracking) still applies.

Statements that may run non-durably select `FROM (SELECT 1) AS one` (ONE): `durable=False`
swaps it for a call that turns synchronous_commit off for that statement's transaction only.
"""

import logging
from typing import Any

import psycopg
from django.db import OperationalError, connection

log = logging.getLogger(__name__)

ONE = "(SELECT 1) AS one"
_ONE_ASYNC = "(SELECT set_config('synchronous_commit', 'off', true)) AS one"

# psycopg prepares a statement after this many runs, or at once with prepare=True.
_EXPLICIT_ONLY = 2**31 - 1


def statement_run(sql: str, params: dict[str, Any], *, durable: bool = True) -> list[tuple]:
    """Run one statement as a prepared statement on Django's connection; its rows.

    Instead of a health-check round trip per call, a statement that finds its persistent
    connection dead is run once more on a new one (outside a transaction only: each statement
    is atomic, and the callers' statements are idempotent).

    `durable=False` (leases, heartbeats, sweeps): the statement's own transaction commits
    without waiting for the WAL flush. A crash may forget the last instant's leases, which only
    returns that work to the pool; results are always durable. Only applied in autocommit, so
    it never relaxes an enclosing transaction.
    """
    if not durable and connection.get_autocommit():
        sql = sql.replace(ONE, _ONE_ASYNC)
    try:
        return _run(sql, params)
    except OperationalError:
        if not connection.get_autocommit() or connection.is_usable():
            raise
        log.warning("db.statement.reconnect")
        connection.close()
        return _run(sql, params)


def _run(sql: str, params: dict[str, Any]) -> list[tuple]:
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors:
        if raw.prepare_threshold != _EXPLICIT_ONLY:  # a connection not set up yet
            # The statements' parameters are ids, tokens and times, so one generic plan serves
            # every call; without this PostgreSQL plans the first five calls on each connection
            # in full. It concerns prepared statements only, which Django itself does not use.
            raw.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', false)")
            # No JIT: these statements read a handful of rows, but a generic plan's estimates
            # (a parameter's selectivity unknown) can cross jit_above_cost, and then every call
            # compiles its plan, costing many times the statement itself (bench/qc/RESULTS.md).
            raw.execute("SELECT set_config('jit', 'off', false)")
            # Django opens its connections with prepare_threshold=None, which makes psycopg
            # ignore `prepare=True`: every call would be parsed and planned again. A threshold
            # no query reaches prepares exactly the statements run here; Django's own cursors
            # (client-side binding) never prepare, so its queries are untouched.
            raw.prepare_threshold = _EXPLICIT_ONLY
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall() if cursor.description else []
