#!/usr/bin/env bash
# The diversity levers, measured (docs/EXPERIMENTS.md): short stages that continue the shipped default
# (--init-from, fresh optimizer and warmup) with ONE selection setting changed, against the
# same stage with the recipe unchanged, at the same number of optimizer steps (STEPS, 2,000).
#   control-s0/-s1  the cpu preset as the default was trained (pool 10 x images, eps = 0.5 x the
#                   data's median NN distance, "any" rejection, constant lr): two training
#                   seeds, so a lever counts only if it moves a metric beyond their spread
#   pool20-s0       a 20x pool (--force-factor 20): more candidates per image
#   eps075-s0       eps = 0.75 x the median NN distance: rejection pushes samples further out
#   knn-s0, knn-s1  RS-IMLE's rejection (each image drops its 5 nearest per 1,024 inside eps)
#   cosine-s0       the learning rate decays to 0.05x by the stage's end
#   knn-pool20-s0   the knn rejection with the 20x pool
#   pool20-s1       the 20x pool's second training seed
# Each arm is then evaluated at the trained H (EVAL_STEPS, 8): 550 samples in 5 draws, with
# the distinct nearest training images of seeds 0-99 (scripts/evaluate_arm.sh). The arms share
# scripts/slots.sh's two one-thread slots; run it again to continue after a stop. The report:
#   python scripts/experiment_report.py runs/diversity-ab
#   bash scripts/run_diversity_ab.sh [runs/diversity-ab]    PARENT=a checkpoint folder (default: see below)
#   ARMS="knn-pool20-s0 pool20-s1" bash scripts/run_diversity_ab.sh    only those arms
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/diversity-ab}
STEPS=${STEPS:-2000}
# Every arm starts from the same parent: the 15,843-step default (stage 3), as shipped at
# commit 9867951 (stage 4, shipped from this A/B, replaced it under checkpoints/).
PARENT=${PARENT:-$OUT/parent-15843}
if [ ! -f "$PARENT/model.safetensors" ]; then
  mkdir -p "$PARENT"
  for f in config.json meta.json model.safetensors; do
    git show "9867951:checkpoints/noto-faces-rtm/$f" > "$PARENT/$f"
  done
fi
export EVAL_STEPS=${EVAL_STEPS:-8}
mkdir -p "$OUT"
data=data/noto-faces-32
[ -f "$data/images.npy" ] || python -m train.data noto-emoji --subset faces --resolution 32 --out "$data"
# --init-from starts each arm from the parent's weights; --resume (added by launch() when an
# arm has a checkpoint) then continues the arm itself.
COMMON="--preset cpu --init-from $PARENT --eval-every 0"
source scripts/slots.sh
launch control-s0 "$data" --seed 0
launch control-s1 "$data" --seed 1
# One lever per question of the issue first (pool size, rejection, schedule), then the
# second rejection variant.
launch pool20-s0 "$data" --seed 0 --force-factor 20
launch knn-s0 "$data" --seed 0 --rejection knn
launch cosine-s0 "$data" --seed 0 --lr-schedule cosine
launch knn-s1 "$data" --seed 1 --rejection knn     # the knn rejection stood out at seed 0: its second seed
# knn doubled the near-copies: with a 20x pool it drops each face's 10 nearest candidates, not 5
launch knn-pool20-s0 "$data" --seed 0 --rejection knn --force-factor 20
launch pool20-s1 "$data" --seed 1 --force-factor 20   # stage 4 shipped from pool20-s0: its second seed
launch eps075-s0 "$data" --seed 0 --eps-nn-fraction 0.75
finish
