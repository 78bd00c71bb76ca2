#!/usr/bin/env bash
# Install Debian packages that the study or the tests need, if missing. Says what to do where it cannot.
set -u
missing=()
for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo -n"; else sudo=none; fi
if [ "$sudo" = none ] || ! command -v apt-get >/dev/null; then
  echo "cannot install ${missing[*]} here (needs apt-get as root). Install them by hand: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/koala-apt.log 2>&1 \
  || { $sudo apt-get update -q >>/tmp/koala-apt.log 2>&1 && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/koala-apt.log 2>&1; } \
  || { echo "apt-get install ${missing[*]} failed; see /tmp/koala-apt.log" >&2; exit 1; }
