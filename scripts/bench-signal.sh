#!/usr/bin/env bash
# Signal server load benchmark: N sockets (default 10000) in one room doing the classic exchange.
# Raises the open-file limit as far as allowed first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each process (clients, server) holds one descriptor per socket.
want=$(( ${OMNICAST_BENCH_SOCKETS:-10000} + 1024 ))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$want" ]; then
  echo "open-file limit $(ulimit -n) is below the $want this run needs; raise the hard limit (ulimit -Hn)" >&2
  exit 1
fi
exec cargo bench -p omnicast-signal --bench load
