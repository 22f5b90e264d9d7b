#!/usr/bin/env bash
# Push a folder made by scripts/make_space.sh to a Hugging Face Space, its binaries through LFS.
#   bash scripts/push_space.sh /tmp/rtm-space https://huggingface.co/spaces/YOUR_NAME/rtm-explorer
# Create the Space (Gradio SDK) on the Hub first; the push asks for a token with write access.
set -euo pipefail
folder="${1:?usage: bash scripts/push_space.sh SPACE_FOLDER REMOTE_URL}"
remote="${2:?usage: bash scripts/push_space.sh SPACE_FOLDER REMOTE_URL}"
[ -f "$folder/app.py" ] && [ -f "$folder/.gitattributes" ] || {
  echo "error: $folder is not a Space folder; make one with: bash scripts/make_space.sh $folder" >&2; exit 2; }
if ! git lfs version >/dev/null 2>&1; then
  # Without LFS the checkpoints would go into plain git, which the Hub refuses: stop before committing.
  echo "error: git-lfs is not installed (the Space's checkpoints must go through LFS); install it" \
       "(Debian/Ubuntu: sudo apt-get install git-lfs) and run this again" >&2
  exit 3
fi
cd "$folder"
[ -d .git ] || git init -q -b main
git lfs install --local
git add .gitattributes && git add .
git commit -q -m "RTM Explorer" || echo "nothing new to commit"
git remote get-url origin >/dev/null 2>&1 || git remote add origin "$remote"
git push -u origin main
