#!/usr/bin/env bash
# The adversarial comparison of docs/EXPERIMENTS.md at matched mapper learning rates: every
# mapper's dense layers are equalized with the same lr multiplier, so that RTM and StyleGAN2's
# mapping network move alike per Adam step and only the architecture differs.
#   rtm       RTM (H = 8, L = 2), equalized layers (--mapper.rtm-layer equalized)
#   rtm-h1    the same with the recursion off (H = 1)
#   sg2       StyleGAN2's mapping network: 8 equalized layers, sqrt 2 gain
# at each multiplier of MULTIPLIERS (StyleGAN2's 0.01, and 1 shared by all), for each
# training seed of SEEDS; the mapper's rate is lr x multiplier (--mapping-lr-scale 1). An Adam
# step moves an equalized layer by about lr x multiplier of its scale: over a few thousand steps
# 0.01 leaves every mapper where it started (StyleGAN2's moved 0.1 % in 1,500 steps; it needs
# its ~800,000), 0.1 would move them ~1 %, and 1 lets them learn (the first run's lr x 1 MLP
# moved 7 %). Both RTM arms start z_H at the input injection, as in the IMLE experiment. Faces,
# the adversarial cpu preset, STEPS optimizer steps each (3,000), --max-minutes 0. Slots,
# resuming and the evaluation after training: scripts/slots.sh.
#   bash scripts/run_adversarial.sh [runs/gan-matched]     SEEDS="0 1" for two training seeds
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gan-matched}
STEPS=${STEPS:-3000}
mkdir -p "$OUT"
data=data/noto-faces-32
[ -f "$data/images.npy" ] || python -m train.data noto-emoji --subset faces --resolution 32 --out "$data"
COMMON="--objective adversarial --preset cpu --mapping-lr-scale 1"
source scripts/slots.sh
for seed in ${SEEDS:-0}; do
  for m in ${MULTIPLIERS:-0.01 1}; do
    rtm="--seed $seed --mapper.state-init input --mapper.rtm-layer equalized --mapper.lr-multiplier $m"
    launch "faces-rtm-m$m-s$seed" "$data" $rtm
    launch "faces-rtm-h1-m$m-s$seed" "$data" $rtm --mapper.num-steps 1
    launch "faces-sg2-m$m-s$seed" "$data" --seed "$seed" --mapper.kind mlp --mapper.mlp-layer equalized \
      --mapper.mlp-gain sqrt2 --mapper.lr-multiplier "$m"
  done
done
finish
