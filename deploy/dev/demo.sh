#!/usr/bin/env bash
# `make demo`: SQLite, local files, the filesystem broker; seeds demo data, then serves
# http://127.0.0.1:8000 with a Celery worker beside it (deploy/Procfile.demo, run by honcho).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p var/broker/queue var/broker/processed var/broker/control
export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
export CELERY_BROKER_URL="filesystem://"
export STORAGE_BACKEND="local"
unset DATABASE_URL  # the embedded default: var/db.sqlite3
# The worker must be up before seeding queues work for it; honcho starts both, seeding waits.
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py collectstatic --noinput -v0
.venv/bin/python manage.py seed_demo --logins var/demo-logins.txt
echo
echo "SpatialPrefs demo: http://127.0.0.1:8000   (admin: http://127.0.0.1:8000/admin/)"
cat var/demo-logins.txt
echo "Stop with Ctrl-C."
echo
exec .venv/bin/honcho -f deploy/Procfile.demo -d . start
