#!/usr/bin/env bash
# Ship one stage of a long run over the checkpoint it started from, only if it measures better
# (docs/TRAINING.md, "Continue from a checkpoint"): the shipping pipeline in full with its gate
# (train/ship.py: export, training images, the protocol's evaluation, the gate, the UMAP map,
# the model card). A stage that is not better leaves the folder as it was. After shipping the
# app default, re-pin tests/test_rtm_core/test_pinned.py (its seed-42 values).
#   bash scripts/ship_stage.sh runs/long/stage2 checkpoints/noto-faces-rtm data/noto-faces-32
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 ckpt=$2 data=$3
python -m train.ship "$run" --out "$ckpt" --data "$data" --full --gate
