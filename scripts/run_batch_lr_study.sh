#!/usr/bin/env bash
# The batch / learning-rate scaling study (docs/TRAINING.md), on a CPU at equal images: the `cpu` preset
# from scratch on the 103 faces (32x32), every arm shown IMAGES images (9,600: a few minutes per
# arm), its schedules counted in images (warmup 3,200, EMA half-life 2,200, re-selection every
# 20 epochs), so the arms differ only in batch size and learning rate:
#   b16-lr5e-4   the cpu preset as it is
#   b64-lr2e-4   the old gpu preset's batch and rate
#   b64-lr5e-4, b64-lr1e-3, b64-lr2e-3   batch 64 at the same, 2x (sqrt-batch rule) and 4x (linear rule) rate
# two training seeds each, so a difference counts only beyond their spread. Each arm is then
# evaluated at its trained H (EVAL_STEPS, 8): 550 samples in 5 draws (scripts/evaluate_arm.sh).
# The arms share scripts/slots.sh's two one-thread slots; run it again to continue after a stop.
#   bash scripts/run_batch_lr_study.sh [runs/batch-lr]       SEEDS="0 1" IMAGES=9600 BATCH_LR="16:5e-4 64:2e-3"
#   python scripts/experiment_report.py runs/batch-lr
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/batch-lr}
IMAGES=${IMAGES:-9600}
export EVAL_STEPS=${EVAL_STEPS:-8}
mkdir -p "$OUT"
data=data/noto-faces-32
[ -f "$data/images.npy" ] || python -m train.data noto-emoji --subset faces --resolution 32 --out "$data"
COMMON="--preset cpu --eval-every 0 --sample-every 0"
source scripts/slots.sh
for seed in ${SEEDS:-0 1}; do
  for arm in ${BATCH_LR:-16:5e-4 64:2e-4 64:5e-4 64:1e-3 64:2e-3}; do
    batch=${arm%%:*} lr=${arm##*:}
    STEPS=$(( IMAGES / batch ))   # launch() gives --max-steps $STEPS: equal images, not equal steps
    launch "b$batch-lr$lr-s$seed" "$data" --seed "$seed" --batch-size "$batch" --lr "$lr" \
      --log-every "$(( STEPS / 6 ))" --checkpoint-every "$STEPS"
  done
done
finish
