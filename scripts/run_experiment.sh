#!/usr/bin/env bash
# The few-shot IMLE experiment of docs/EXPERIMENTS.md, arms that their authors would sign:
#   rs-imle    RS-IMLE as its code builds and trains it (--preset rs-imle: its decoder, mapper,
#              optimiser, EMA, pool and rejection rule; batch 4), plus StyleGAN2-ADA's EMA
#              ramp-up: at decay 0.9999 a 4,000-step EMA would still be 67 % initial weights
#   rtm        RTM (H = 8, L = 2), the app's model (cpu preset)      training seeds 0 and 1
#   rtm-h1     the same mapper with the recursion off (H = 1)        training seeds 0 and 1
#   mlp        the one-pass MLP with RTM's decoder (the mapper's effect alone)
# Both RTM arms start z_H at the input injection (--mapper.state-init input), so that at
# initialisation H = 1 and H = 8 have the same w seed-spread (0.99 and 0.99; with the fixed
# start they are 0.40 and 0.98): the recursion-off arm does not start handicapped.
# Same data, loss family (perceptual + pixel, at 32 px) and optimizer steps (STEPS, 4,000) in
# every arm. The budget is steps, never minutes: --max-minutes 0, and experiment_report.py
# refuses an arm that stopped short. In training, each arm is evaluated every 1,500 steps on 200
# samples (the learning curve and the 1,500-step figures; ~3 minutes each on one thread, where
# 550 samples took 8); its full evaluation (scripts/evaluate_arm.sh, h = 1..64) follows its
# training in the same slot, and the report's tables come at the end. Slots: scripts/slots.sh
# (2, one thread each), the longest arm first. Stopped part-way (a session ends), run it
# again: finished arms are skipped (evaluated if they were not), the others continue.
#   bash scripts/run_experiment.sh [runs/fewshot]          SUBSETS="faces animals fluent-faces" to add subsets
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fewshot}
STEPS=${STEPS:-4000}
mkdir -p "$OUT"
prepare() {  # subset -> its data folder, prepared once
  case $1 in
    fluent-*) [ -f "data/$1-32/images.npy" ] || python -m train.data fluent-emoji --subset "${1#fluent-}" --resolution 32 --out "data/$1-32" >&2
              echo "data/$1-32" ;;
    *)        [ -f "data/noto-$1-32/images.npy" ] || python -m train.data noto-emoji --subset "$1" --resolution 32 --out "data/noto-$1-32" >&2
              echo "data/noto-$1-32" ;;
  esac
}
COMMON="--eval-every 1500 --eval-samples 200"
source scripts/slots.sh
for subset in ${SUBSETS:-faces}; do
  data=$(prepare "$subset")
  launch "$subset-rs-imle" "$data" --preset rs-imle --perceptual-size 32 --ema-rampup 0.05
  for seed in 0 1; do
    launch "$subset-rtm-s$seed" "$data" --preset cpu --seed "$seed" --mapper.state-init input
    launch "$subset-rtm-h1-s$seed" "$data" --preset cpu --seed "$seed" --mapper.state-init input --mapper.num-steps 1
  done
  launch "$subset-mlp" "$data" --preset cpu --mapper.kind mlp
done
finish
