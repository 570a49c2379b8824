#!/usr/bin/env bash
# What the console's browser test (tests/console_browser.rs) needs: Debian's chromium, and
# playwright-core from npm in tests/browser/node_modules (kept out of git). Installs only what is
# missing; quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: installing chromium (Debian package)"
  timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { timeout 300 apt-get update -qq >/dev/null 2>&1 &&
      timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1; }
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "browser-deps: installing playwright-core into tests/browser/node_modules"
  (cd tests/browser && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
