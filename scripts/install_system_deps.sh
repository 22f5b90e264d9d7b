#!/usr/bin/env bash
# Debian packages the project uses:
#   fonts-noto-color-emoji  Noto Color Emoji (3,926 colour bitmaps) for train.data noto-emoji
#   dataset-fashion-mnist   Fashion-MNIST for train.data fashion-mnist
#   chromium                the headless browser of the app's browser tests (Playwright drives it)
# Installs only what is missing; needs root (or sudo).
set -euo pipefail
packages=(fonts-noto-color-emoji dataset-fashion-mnist chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "install_system_deps: not root and no sudo; install ${missing[*]} by hand" >&2; exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
