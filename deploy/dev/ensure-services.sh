#!/usr/bin/env bash
# The services `make test` and the benchmarks need.
#   ensure-services.sh
#       Redis answers on 127.0.0.1:6379 (started where installed but stopped).
#   ensure-services.sh --database URL -- COMMAND...
#       Redis, and a PostgreSQL for COMMAND, run with DATABASE_URL set: URL when its server
#       answers, otherwise the embedded server (deploy/dev/embedded_db.py, data in var/postgres,
#       the one `make demo` uses), which is stopped after COMMAND if this call started it. So a
#       machine without a PostgreSQL service still runs the suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Redis is down: starting it" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "error: Redis is not answering on 127.0.0.1:6379 and could not be started (install: apt-get install -y redis-server)" >&2; exit 1; }
fi

if [ "${1:-}" != "--database" ]; then
  echo "services: Redis is up" >&2
  exit 0
fi
url="$2"
shift 2
[ "${1:-}" = "--" ] && shift

# The server answers when it takes a connection to its `postgres` database. The URL's own
# database is created if missing (pytest-django makes test_<name> beside it; the migrations
# check reads the history from it), where the role may create databases.
pg_answers() {
  "$PY" - "$1" <<'PYEOF' 2>/dev/null
import sys

import psycopg
from psycopg import sql

url = sys.argv[1]
with psycopg.connect(url, dbname="postgres", connect_timeout=3, autocommit=True) as conn:
    name = psycopg.conninfo.conninfo_to_dict(url).get("dbname")
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if name and found is None:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error:
            pass  # no CREATEDB: the tests will say so; the server still answers
PYEOF
}

started=""
stop_started() { if [ -n "$started" ]; then "$PY" deploy/dev/embedded_db.py stop; fi; }
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if pg_answers "$url"; then
  echo "services: Redis and PostgreSQL ($url) are up" >&2
else
  echo "services: no PostgreSQL answers at $url: using the embedded server (var/postgres)" >&2
  "$PY" deploy/dev/embedded_db.py status || started=1
  url="$("$PY" deploy/dev/embedded_db.py start)"
fi
DATABASE_URL="$url" "$@"
