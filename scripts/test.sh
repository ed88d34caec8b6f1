#!/usr/bin/env bash
# Every test: formatting, lints, Rust unit and integration tests (the app driven by egui_kittest
# and in a real window under Xvfb among them), the Node Socket.IO client suite, the browser
# end-to-end suite in a private network namespace, and the headless (no window) build. Needs
# scripts/setup-debian.sh.
#
# Each step has a time limit well above what it takes here, so a hang fails that step by name
# instead of running CI out of time; each step prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
# The window tests' graphics stack wants a runtime directory; a fresh machine may have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi

started=$SECONDS
# step LIMIT NAME COMMAND...: runs COMMAND, killed after LIMIT (timeout(1) syntax).
step() {
  local limit=$1 name=$2 t0=$SECONDS rc=0
  shift 2
  printf '\n== %s\n' "$name"
  timeout --kill-after=30s "$limit" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf '== %s: no result within %s, stopped\n' "$name" "$limit"
  fi
  printf '== %s: %ss (exit %s)\n' "$name" "$((SECONDS - t0))" "$rc"
  return "$rc"
}

step 2m "cargo fmt --check" cargo fmt --all -- --check

step 30m "cargo clippy --all-targets -- -D warnings" \
  cargo clippy --workspace --all-targets --locked -- -D warnings

# Builds the binaries the Node and browser suites start, too (integration tests need them).
step 30m "cargo test" cargo test --workspace --locked

step 5m "node: official socket.io-client 4.x and 2.x against omnicast-signal" \
  node --test --test-timeout=60000 --test-force-exit tests/node/

step 10m "browser: Chromium pages through omnicast-signal (private network namespace)" \
  tests/browser/run.sh

# Last: it leaves the headless binary at target/debug/omnicast.
step 15m "headless build: no window libraries; its binary broadcasts to a viewer" \
  scripts/headless-check.sh

printf '\n== all tests passed in %ss\n' "$((SECONDS - started))"
