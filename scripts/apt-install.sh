#!/usr/bin/env bash
# Install Debian packages that some tests use, if missing: Chromium (where Playwright cannot get its own) and the
# photo packages that `koala photos rebuild --check` compares with the stored photos. Neither the study nor any other
# test needs them or root. Says what to do where it cannot; with --optional that is a note and exit status 0.
# If another package manager holds the dpkg lock (an unattended upgrade, another apt-get), wait for it, saying so,
# up to KOALA_APT_LOCK_TIMEOUT seconds (default 600).
set -u
optional=false
if [ "${1:-}" = --optional ]; then optional=true; shift; fi
missing=()
for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
# --optional never asks sudo: only a root run (CI) installs them.
if [ "$(id -u)" = 0 ]; then sudo=""; elif ! $optional && command -v sudo >/dev/null; then sudo="sudo -n"; else sudo=none; fi
if [ "$sudo" = none ] || ! command -v apt-get >/dev/null; then
  if $optional; then
    echo "not installing ${missing[*]} (needs apt-get as root): the tests that use them are skipped"
    exit 0
  fi
  echo "cannot install ${missing[*]} here (needs apt-get as root). Install them by hand: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
timeout=${KOALA_APT_LOCK_TIMEOUT:-600}
# apt-get waits for the dpkg lock itself with this option (apt >= 1.9.11), printing what holds it.
lock_wait=(-o "DPkg::Lock::Timeout=$timeout")
lock_held() {  # dpkg locks with fcntl: try to take the same lock without waiting
  $sudo python3 -c 'import fcntl, sys
try:
    with open("/var/lib/dpkg/lock-frontend", "a") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(0)
sys.exit(1)' 2>/dev/null
}
if lock_held; then
  who=$(command -v fuser >/dev/null && $sudo fuser /var/lib/dpkg/lock-frontend 2>/dev/null | tr -s ' ')
  echo "waiting up to ${timeout}s for the dpkg lock: another package manager is running${who:+ (process$who)}"
fi
log=/tmp/koala-apt.log
$sudo apt-get "${lock_wait[@]}" install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
  || { $sudo apt-get "${lock_wait[@]}" update -q >>"$log" 2>&1 \
       && $sudo apt-get "${lock_wait[@]}" install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; } \
  || { if grep "^E:" "$log" | tail -n 2 | grep -q "lock"; then
         echo "apt-get install ${missing[*]} failed: the dpkg lock was still held after ${timeout}s (see $log); run 'make' again once the other package manager has finished, or set KOALA_APT_LOCK_TIMEOUT" >&2
       else
         echo "apt-get install ${missing[*]} failed; see $log" >&2
       fi
       exit 1; }
