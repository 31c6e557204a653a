#!/usr/bin/env bash
# `make demo`: an embedded PostgreSQL (deploy/dev/embedded_db.py, data in var/postgres, kept
# between runs), local files and kombu's filesystem broker: nothing to install but Python.
# Starts the database and the Celery worker, seeds what is missing through the worker (prompts,
# images, pairs, a frozen and exported dataset, a short training run), then serves
# http://127.0.0.1:8000 (DEMO_PORT). Ctrl-C, a TERM signal, gunicorn's exit or a failing step
# stops gunicorn, the worker (with its beat) and the database; nothing is left running.
# DEMO_SEED=0 skips the seeding (the processes only). deploy/Procfile.demo has the same
# processes for honcho, on a database you start yourself.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
VAR="$(mkdir -p "${SPATIALPREFS_VAR_DIR:-var}" && cd "${SPATIALPREFS_VAR_DIR:-var}" && pwd)"
PORT="${DEMO_PORT:-8000}"
STOP_SECONDS=10  # a process group still there after this is killed
export SPATIALPREFS_VAR_DIR="$VAR"
mkdir -p "$VAR/broker/queue" "$VAR/broker/processed" "$VAR/broker/control" "$VAR/log"
export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
export CELERY_BROKER_URL="filesystem://"
export STORAGE_BACKEND="local"
unset DATABASE_URL  # the settings' default: the embedded server below

# Each long-running process is the leader of its own process group (setsid), so stopping it
# reaches its children too (the worker's pool and beat, gunicorn's workers), and Ctrl-C in the
# terminal reaches this script, which stops them in order.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
leader_alive() { [ -n "$(ps -o stat= -p "$1" 2>/dev/null | grep -v Z)" ]; }
group_reap() {  # group_reap PGID: wait for the signalled leader, then kill the rest
  local pgid="$1" deadline=$((SECONDS + STOP_SECONDS))
  while leader_alive "$pgid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  leader_alive "$pgid" && echo "demo: $pgid still running after ${STOP_SECONDS} s: killing it"
  # What outlives its stopped leader (the worker's beat process takes seconds to notice) or a
  # leader past the deadline is killed: nothing of the demo is left running.
  if group_alive "$pgid"; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
}
stale_stop() {  # a group left by a demo that was killed outright (kill -9)
  local pidfile="$1" pgid
  [ -s "$pidfile" ] || return 0
  pgid="$(cat "$pidfile")"
  if group_alive "$pgid" && grep -qs -- "$2" "/proc/$pgid/cmdline"; then
    echo "demo: stopping the $2 process group $pgid left by an earlier run"
    kill -TERM "$pgid" 2>/dev/null || true
    group_reap "$pgid"
  fi
  rm -f "$pidfile"
}

worker_pid=""
web_pid=""
stop_all() {
  local status=$?
  set +e
  trap '' INT TERM  # a second Ctrl-C must not cut the stop short
  trap - EXIT
  echo
  echo "demo: stopping"
  # gunicorn: INT is its quick shutdown; the Celery worker: TERM is its warm shutdown.
  [ -n "$web_pid" ] && kill -INT "$web_pid" 2>/dev/null
  [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null
  [ -n "$web_pid" ] && group_reap "$web_pid"
  [ -n "$worker_pid" ] && group_reap "$worker_pid"
  rm -f "$VAR/demo-web.pid" "$VAR/demo-worker.pid"
  "$PY" deploy/dev/embedded_db.py stop
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stale_stop "$VAR/demo-web.pid" gunicorn
stale_stop "$VAR/demo-worker.pid" celery

# Settings refuse to start without SECRET_KEY: the demo makes a random one on its first run,
# readable by this user only, and reuses it (sessions survive a restart of the demo).
if [ -z "${SECRET_KEY:-}" ]; then
  if [ ! -s "$VAR/secret_key" ]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(50))' \
      >"$VAR/secret_key.tmp" && mv "$VAR/secret_key.tmp" "$VAR/secret_key")
  fi
  chmod 600 "$VAR/secret_key"
  SECRET_KEY="$(cat "$VAR/secret_key")"
  export SECRET_KEY
fi

"$PY" deploy/dev/embedded_db.py start >/dev/null
"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0

# -B: the worker runs Celery beat too, whose sweeps publish again the work whose messages were
# lost (RECOVERY_SWEEP_SECONDS, RECOVERY_STALE_SECONDS; docs/operations.md).
setsid .venv/bin/celery -A config worker -Q gpu,cpu,training --concurrency 2 --hostname demo@%h \
  -B --schedule "$VAR/celerybeat-schedule" --logfile="$VAR/log/demo-worker.log" --loglevel INFO \
  >>"$VAR/log/demo-worker.log" 2>&1 &
worker_pid=$!
echo "$worker_pid" >"$VAR/demo-worker.pid"

logins="$VAR/demo-logins.txt"
if [ "${DEMO_SEED:-1}" != "0" ]; then
  echo "demo: seeding what is missing (a first run renders, labels and trains: a few minutes)"
  "$PY" manage.py seed_demo --logins "$logins"
fi

setsid .venv/bin/gunicorn config.wsgi --bind "127.0.0.1:$PORT" --workers 2 --threads 4 \
  --access-logfile - --error-logfile - &
web_pid=$!
echo "$web_pid" >"$VAR/demo-web.pid"
echo
echo "SpatialPrefs demo: http://127.0.0.1:$PORT   (admin: http://127.0.0.1:$PORT/admin/)"
if [ -s "$logins" ]; then
  echo "Logins (role, user, password) are in $logins:"
  sed 's/^login: /  /' "$logins"
fi
echo "The database's data is in $VAR/postgres; the worker logs to $VAR/log/demo-worker.log."
echo "Stop with Ctrl-C."
echo
wait "$web_pid"
