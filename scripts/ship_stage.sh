#!/usr/bin/env bash
# Ship one stage of a long run over the checkpoint it started from, only if it measures better
# (docs/TRAINING.md, "Continue from a checkpoint"): export (float16), evaluate per refinement
# step, compare with the shipped eval.json at the trained H, then the app's map, nearest-image
# set and the model card. A stage that is not better is not shipped: the folder is restored
# from git. After shipping the app default, re-pin tests/test_pinned.py (its seed-42 values).
#   bash scripts/ship_stage.sh runs/long/stage2 checkpoints/noto-faces-rtm data/noto-faces-32
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 ckpt=$2 data=$3
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
cp "$ckpt/eval.json" "$old/eval.json"
python -m train.export "$run" --out "$ckpt"
python -m train.evaluate --checkpoint "$ckpt" --data "$data" --num-samples 550 --draws 5 \
  --out "reports/$(basename "$ckpt")" --steps "${STEPS:-1,2,3,4,6,8,12,16,24,32,48,64}"
if ! python scripts/compare_eval.py "$ckpt/eval.json" "$old/eval.json"; then
  git checkout -- "$ckpt" && git clean -fdq -- "$ckpt"
  echo "not shipped: $run does not measure better than $ckpt (restored)" >&2
  exit 1
fi
python -m app.projection --checkpoint "$ckpt" --seeds 1000
python -m train.ship --checkpoint "$ckpt" --data "$data"
python scripts/model_card.py "$ckpt"
