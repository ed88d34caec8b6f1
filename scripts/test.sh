#!/usr/bin/env bash
# Every test: formatting, lints, Rust unit and integration tests (the app driven by egui_kittest
# and in a real window under Xvfb among them), the Node Socket.IO client suite, and the browser
# end-to-end suite in a private network namespace. Needs scripts/setup-debian.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# The window tests' graphics stack wants a runtime directory; a fresh machine may have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (binaries the Node and browser suites start)"
cargo build --workspace --locked

step "cargo test"
cargo test --workspace --locked

step "node: official socket.io-client 4.x and 2.x against omnicast-signal"
node --test tests/node/

step "browser: Chromium pages through omnicast-signal (private network namespace)"
tests/browser/run.sh
