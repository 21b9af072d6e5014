#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/browser/): Playwright drives it through
# executable_path=/usr/bin/chromium; `playwright install` is never used (it downloads from a CDN).
# Installs only when it is missing and we are root or have sudo; otherwise says so and exits 0
# (the browser tests then skip with the reason, or fail under LAKESTACK_REQUIRE_SERVICES=1).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install-chromium: /usr/bin/chromium is missing and we are neither root nor allowed sudo; the browser tests will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install chromium at /usr/bin/chromium for the browser tests" >&2
  exit 0
fi
echo "install-chromium: apt-get install chromium (for the browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium >/dev/null; then
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null ||
    echo "install-chromium: apt-get could not install chromium; the browser tests will skip" >&2
fi
