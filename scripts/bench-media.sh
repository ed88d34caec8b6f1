#!/usr/bin/env bash
# The media benchmarks in one run, inside a private network namespace (Chromium must not reach
# the network): codec rates, the desktop fan-out, then the Chromium broadcaster anchor.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${OMNICAST_IN_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then unshare_flags=(-n); else unshare_flags=(-r -n); fi
  exec unshare "${unshare_flags[@]}" env OMNICAST_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up
cargo build --workspace
cargo bench -p omnicast --bench codec
cargo bench -p omnicast --bench fanout
node tests/bench/chromium-anchor.mjs "${OMNICAST_ANCHOR_VIEWERS:-1,5,20}" "${OMNICAST_BENCH_SECONDS:-10}"
