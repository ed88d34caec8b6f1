#!/usr/bin/env bash
# Installs the system packages Omnicast builds and tests with on Debian (idempotent), and the npm
# packages from package-lock.json.
#   chromium     browser end-to-end tests (driven by playwright-core; never downloads a browser)
#   iproute2     `ip`, to bring loopback up inside the tests' private network namespace
#   util-linux   `unshare`, for that namespace
#   openssl      a throw-away certificate for the HTTPS test
#   libclang-dev, nasm, pkg-config: the media engine's camera bindings and fast openh264
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium iproute2 util-linux openssl libclang-dev nasm pkg-config)
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
