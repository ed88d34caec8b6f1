#!/usr/bin/env bash
# The media benchmarks in one run, inside a private network namespace (Chromium must not reach
# the network): codec rates, the desktop fan-out, viewport samples, sound (lip sync, latency, cost), recording (CPU, bytes, loss on SIGKILL), the Chromium anchor, and
# the viewer page's 360° view against its flat view.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace
exec scripts/in-netns.sh bash -c '
  set -euo pipefail
  cargo bench -p omnicast-engine --bench codec
  cargo bench -p omnicast --bench fanout
  cargo bench -p omnicast --bench viewports
  cargo bench -p omnicast --bench audio
  cargo bench -p omnicast --bench record
  node tests/bench/chromium-anchor.mjs "${OMNICAST_ANCHOR_VIEWERS:-1,5,20}" "${OMNICAST_BENCH_SECONDS:-10}"
  node tests/bench/page-360.mjs "${OMNICAST_BENCH_SECONDS:-15}"
'
