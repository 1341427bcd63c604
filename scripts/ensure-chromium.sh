#!/usr/bin/env bash
# The end-to-end tests drive Debian's Chromium; install it when it is missing and we may.
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is missing at $chromium: run 'sudo apt-get install chromium' or set CHROMIUM_PATH." >&2
  exit 1
fi
echo "Installing Debian's chromium for the end-to-end tests…" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
