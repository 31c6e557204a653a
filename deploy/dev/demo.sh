#!/usr/bin/env bash
# `make demo`: SQLite, local files and kombu's filesystem broker (no service needed). Starts
# the Celery worker in the background, seeds the demo through it (prompts, images, pairs,
# a frozen and exported dataset, a short training run), then serves http://127.0.0.1:8000.
# The same two processes are in deploy/Procfile.demo for honcho.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p var/broker/queue var/broker/processed var/broker/control var/log
export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
export CELERY_BROKER_URL="filesystem://"
export STORAGE_BACKEND="local"
unset DATABASE_URL  # the embedded default: var/db.sqlite3
# Settings refuse to start without SECRET_KEY: the demo makes a random one on its first run,
# readable by this user only, and reuses it (sessions survive a restart of the demo).
if [ -z "${SECRET_KEY:-}" ]; then
  if [ ! -s var/secret_key ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' \
      >var/secret_key.tmp && mv var/secret_key.tmp var/secret_key)
  fi
  chmod 600 var/secret_key
  SECRET_KEY="$(cat var/secret_key)"
  export SECRET_KEY
fi

.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0

pidfile=var/demo-worker.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill "$(cat "$pidfile")" && sleep 2
fi
# -B: the worker runs Celery beat too, whose sweeps publish again the work whose messages were
# lost (RECOVERY_SWEEP_SECONDS, RECOVERY_STALE_SECONDS; docs/operations.md).
.venv/bin/celery -A config worker -Q gpu,cpu,training --concurrency 2 --hostname demo@%h \
  -B --schedule var/celerybeat-schedule \
  --detach --pidfile="$pidfile" --logfile=var/log/demo-worker.log --loglevel INFO
stop_worker() { [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; }
trap stop_worker EXIT

.venv/bin/python manage.py seed_demo --logins var/demo-logins.txt
echo
echo "SpatialPrefs demo: http://127.0.0.1:8000   (admin: http://127.0.0.1:8000/admin/)"
echo "Logins (role, user, password):"
sed 's/^login: /  /' var/demo-logins.txt
echo "The worker logs to var/log/demo-worker.log. Stop with Ctrl-C."
echo
.venv/bin/gunicorn config.wsgi --bind 127.0.0.1:8000 --workers 2 --threads 4 \
  --access-logfile - --error-logfile -
