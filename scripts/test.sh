#!/usr/bin/env bash
# The test command: start the services if needed, then run every test in the workspace (unit
# tests, and integration tests against the real RabbitMQ and MariaDB), and close with the total.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# The console's browser test drives Debian's chromium through playwright-core.
scripts/browser-deps.sh
log=$(mktemp -t ferry-test.XXXXXX.log)
trap 'rm -f "$log"' EXIT
# Doc-tests are left out: the crates have no doc examples to run.
status=0
cargo test --workspace --locked --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit $status
