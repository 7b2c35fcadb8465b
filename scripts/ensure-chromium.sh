#!/usr/bin/env bash
# Make sure Debian's chromium and chromedriver exist: the browser tests (tests/browser) drive a
# headless chromium through selenium against the local stack. Installs them with apt when run as
# root (CI, containers); otherwise says how. The browser tests skip, saying why, without them.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
have && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (apt-get)..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
  have && exit 0
fi
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "installing chromium and chromium-driver (sudo apt-get)..."
  sudo apt-get update -qq >/dev/null
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
  have && exit 0
fi
echo "chromium/chromedriver are missing: install them (Debian: sudo apt-get install chromium" \
     "chromium-driver; Ubuntu: the chromium snap and its chromedriver) and run the command again" >&2
exit 1
