#!/usr/bin/env bash
# The build for a robot with no screen: `omnicast` without its window (--no-default-features).
# Checks that no window library is in its dependency tree, builds it, then has that binary
# broadcast to a viewer that is that binary too, on loopback. Leaves the headless binary at
# target/debug/omnicast (the next `cargo build` or `cargo test` puts the full one back).
set -euo pipefail
cd "$(dirname "$0")/.."

tree=$(cargo tree -p omnicast --no-default-features --locked -e normal,build,dev --prefix none)
if window=$(grep -E '^(eframe|egui|egui-wgpu|egui-winit|egui_kittest|wgpu|winit) ' <<<"$tree"); then
  printf 'the headless build depends on window libraries:\n%s\n' "$window" >&2
  exit 1
fi
echo "no eframe, egui, wgpu or winit in the headless build's tree"

cargo build -p omnicast --no-default-features --locked
bin=target/debug/omnicast

dir=$(mktemp -d)
caster=""
cleanup() {
  [ -n "$caster" ] && kill "$caster" 2>/dev/null && wait "$caster" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# Asked for a window, it says it has none.
if "$bin" view --server http://127.0.0.1:9 >"$dir/window.log" 2>&1; then
  echo "the headless build opened a window?" >&2
  exit 1
fi
grep -q "built without a window" "$dir/window.log" || { cat "$dir/window.log" >&2; exit 1; }

"$bin" broadcast --headless --bind 127.0.0.1:0 --stun-bind 127.0.0.1:0 --media-bind 127.0.0.1 \
  --source test-pattern --size 320x240 >"$dir/caster.log" 2>&1 &
caster=$!
url=""
for _ in $(seq 150); do
  url=$(grep -o -- '--server http://[^ ]*' "$dir/caster.log" | head -n 1 | cut -d' ' -f2 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$dir/caster.log" >&2; exit 1; }
timeout 60 "$bin" view --headless --media-bind 127.0.0.1 --server "$url" --frames 60 \
  --stats-json "$dir/stats.json"
node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!(s.frames_decoded >= 60 && s.width === 320 && s.frames_lost === 0)) {
    console.error("the headless viewer did not decode the broadcast:", s);
    process.exit(1);
  }
  console.log(`the headless binary broadcast ${s.frames_decoded} frames to its own viewer, none lost`);
' "$dir/stats.json"
