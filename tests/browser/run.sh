#!/usr/bin/env bash
# Runs the browser suites inside a private network namespace with only loopback up.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/in-netns.sh node --test --test-concurrency=1 --test-timeout=120000 --test-force-exit "${@:-tests/browser/}"
