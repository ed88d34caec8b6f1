#!/usr/bin/env bash
# Runs a command in a private network namespace with only loopback up, so nothing it starts
# (Chromium in particular) can send anything off the machine.
#   scripts/in-netns.sh COMMAND [ARGS...]
set -euo pipefail
if [ "${OMNICAST_IN_NETNS:-}" != 1 ]; then
  # As root a plain network namespace; otherwise inside a user namespace that maps us to root.
  if [ "$(id -u)" -eq 0 ]; then unshare_flags=(-n); else unshare_flags=(-r -n); fi
  exec unshare "${unshare_flags[@]}" env OMNICAST_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up
exec "$@"
