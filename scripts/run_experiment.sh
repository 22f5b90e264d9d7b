#!/usr/bin/env bash
# The few-shot experiment of docs/EXPERIMENTS.md: three mapper arms x two Noto emoji subsets,
# plus the loss ablation (RTM with pixel L2 only), all in parallel, one thread each.
# Same decoder, data, optimizer steps and seed in every arm; only the mapper (or the loss) differs.
#   bash scripts/run_experiment.sh [runs/fewshot]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fewshot}
mkdir -p "$OUT"
for subset in animals faces; do
  [ -f "data/noto-$subset-32/images.npy" ] || python -m train.data noto-emoji --subset "$subset" --resolution 32 --out "data/noto-$subset-32"
done
launch() {  # name, subset, extra flags...
  local name=$1 subset=$2; shift 2
  echo "OMP_NUM_THREADS=1 python -m train.train --preset cpu --data data/noto-$subset-32 --out $OUT/$name --no-progress $*" >> "$OUT/commands.txt"
  OMP_NUM_THREADS=1 nohup python -m train.train --preset cpu --data "data/noto-$subset-32" --out "$OUT/$name" \
    --no-progress "$@" > "$OUT/$name.log" 2>&1 &
}
: > "$OUT/commands.txt"
for subset in animals faces; do
  launch "$subset-rtm" "$subset"
  launch "$subset-rtm-h1" "$subset" --mapper.num-steps 1
  launch "$subset-mlp" "$subset" --mapper.kind mlp
done
launch animals-rtm-pixel animals --loss-perceptual 0
echo "started 7 runs; logs in $OUT/*.log, commands in $OUT/commands.txt"
