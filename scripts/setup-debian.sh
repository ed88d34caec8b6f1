#!/usr/bin/env bash
# Installs the system packages Omnicast builds and tests with on Debian (idempotent), and the npm
# packages from package-lock.json.
#   chromium     browser end-to-end tests (driven by playwright-core; never downloads a browser)
#   iproute2     `ip`, to bring loopback up inside the tests' private network namespace
#   util-linux   `unshare`, for that namespace
#   openssl      a throw-away certificate for the HTTPS test
#   libclang-dev, nasm, pkg-config: the media engine's camera bindings and fast openh264
#   xvfb, xauth  an X server for the window tests (the app in a real window, screenshots)
#   x11-apps     `xwd`: the browser suite reads the desktop viewer's window beside the page
#   mesa-vulkan-drivers, libvulkan1: lavapipe, the software Vulkan wgpu renders with there
#   libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0: what winit opens at run time
#   cmake        builds libopus for the opus crate; libasound2-dev: ALSA, for cpal (sound in and out)
#   nftables     `nft`: the audio test drops 5 % of UDP inside its own network namespace
#   ffmpeg       `ffprobe`/`ffmpeg`: the recording tests open the MP4 files as a person's player would
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium iproute2 util-linux openssl libclang-dev nasm pkg-config
  xvfb xauth x11-apps mesa-vulkan-drivers libvulkan1 libx11-6 libxcursor1 libxrandr2 libxi6
  libxkbcommon-x11-0 cmake libasound2-dev nftables ffmpeg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund --loglevel=error
