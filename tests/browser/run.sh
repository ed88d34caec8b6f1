#!/usr/bin/env bash
# Runs the browser suites inside a private network namespace with only loopback up, so neither
# Chromium nor the server can send anything off the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${OMNICAST_IN_NETNS:-}" != 1 ]; then
  # As root a plain network namespace; otherwise inside a user namespace that maps us to root.
  if [ "$(id -u)" -eq 0 ]; then unshare_flags=(-n); else unshare_flags=(-r -n); fi
  exec unshare "${unshare_flags[@]}" env OMNICAST_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up
exec node --test --test-concurrency=1 "${@:-tests/browser/}"
