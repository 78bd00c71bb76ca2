#!/usr/bin/env bash
# A headless Chromium for the survey's screenshots (notebook 05) and the real-browser test, without root where it can:
# Debian's chromium where installed; else, as root with apt-get (CI), Debian's package; else Playwright's own
# download into this user's cache. Where none works it says so in one line and exits 0 (the browser test is then
# skipped with the same line). Usage: get-browser.sh PYTHON (the virtual environment's python).
set -u
py=${1:?usage: get-browser.sh PYTHON}
found() { "$py" -c 'import sys; from koalarization.browser import find_chromium; p = find_chromium(); print(p or ""); sys.exit(0 if p else 1)'; }
if path=$(found); then echo "browser: $path"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash "$(dirname "$0")/apt-install.sh" chromium && exit 0
fi
echo "browser: installing Playwright's Chromium for this user ($py -m playwright install chromium)"
log=${TMPDIR:-/tmp}/koala-playwright-install.log
if "$py" -m playwright install chromium >"$log" 2>&1 && path=$(found); then echo "browser: $path"; exit 0; fi
echo "$("$py" -c 'from koalarization.browser import MISSING; print(MISSING)') (Playwright's download failed: see $log)" >&2
exit 0
