#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (no `playwright install`).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Chromium is missing: installing Debian's chromium package"
  (apt-get install -y -q chromium >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)
fi
[ -x /usr/bin/chromium ] || { echo "error: /usr/bin/chromium is missing (install: apt-get install -y chromium)"; exit 1; }
