#!/usr/bin/env bash
# Build the Hugging Face Space's folder: the app, the library and the shipped checkpoints,
# with the Space's own requirements (CPU torch) and .gitattributes (binaries through LFS).
#   bash scripts/make_space.sh OUT        # then follow docs/APP.md, "Publish as a Space"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: bash scripts/make_space.sh OUT_FOLDER}"
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "error: $out exists and is not empty; give a new folder" >&2
  exit 2
fi
mkdir -p "$out"
cp "$root/app.py" "$root/README.md" "$out/"
cp "$root/space/requirements.txt" "$out/requirements.txt"
cp "$root/space/gitattributes" "$out/.gitattributes"
for package in rtm_core app; do
  mkdir -p "$out/$package"
  (cd "$root" && find "$package" -name '*.py' -o -name 'py.typed' -o -path 'app/assets/*' -type f) | while read -r f; do
    mkdir -p "$out/$(dirname "$f")" && cp "$root/$f" "$out/$f"
  done
done
mkdir -p "$out/checkpoints"
for ckpt in "$root"/checkpoints/*/; do
  cp -r "$ckpt" "$out/checkpoints/"
done
# Everything the README shows or links to by a relative path (pictures, docs/*.md), so that its
# pictures and links work inside the Space too.
grep -oE '\]\([^)#[:space:]]+' "$root/README.md" | cut -c3- | grep -vE '^[a-z]+:' | sort -u | while read -r f; do
  if [ -f "$root/$f" ] && [ ! -e "$out/$f" ]; then mkdir -p "$out/$(dirname "$f")" && cp "$root/$f" "$out/$f"; fi
done
echo "Space folder ready: $out ($(du -sh "$out" | cut -f1))"
