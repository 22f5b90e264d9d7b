#!/usr/bin/env bash
# System packages and data sources the project uses:
#   fonts-noto-color-emoji  Noto Color Emoji (3,926 colour bitmaps) for train.data noto-emoji
#   dataset-fashion-mnist   Fashion-MNIST for train.data fashion-mnist
#   libcairo2               the library cairosvg draws with, for train.data fluent-emoji
#   chromium                the headless browser of the app's browser tests (Playwright drives it)
#   npm fluentui-emoji      Microsoft's Fluent Emoji SVGs (MIT), into $RTM_SOURCES
#                           (default ~/.cache/rtm-explorer), for train.data fluent-emoji
# Installs only what is missing; apt needs root (or sudo), npm needs Node.js (apt's nodejs/npm if absent).
set -euo pipefail
packages=(fonts-noto-color-emoji dataset-fashion-mnist libcairo2 chromium)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "install_system_deps: not root and no sudo; install ${missing[*]} by hand" >&2; exit 1
  fi
  echo "install_system_deps: apt packages ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
sources="${RTM_SOURCES:-$HOME/.cache/rtm-explorer}"
if [ ! -f "$sources/node_modules/fluentui-emoji/package.json" ]; then
  echo "install_system_deps: npm package fluentui-emoji@1.3.0 (Fluent Emoji SVGs, MIT; for train.data fluent-emoji) into $sources (RTM_SOURCES chooses another folder)" >&2
  mkdir -p "$sources"
  npm install --prefix "$sources" --no-audit --no-fund --no-save --loglevel=error fluentui-emoji@1.3.0
fi
