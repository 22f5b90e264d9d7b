#!/usr/bin/env bash
# The few-shot IMLE experiment of docs/EXPERIMENTS.md, arms that their authors would sign:
#   rtm        RTM (H = 8, L = 2), the app's model (cpu preset)      training seeds 0 and 1
#   rtm-h1     the same mapper with the recursion off (H = 1)        training seeds 0 and 1
#   mlp        the one-pass MLP with RTM's decoder (the mapper's effect alone)
#   rs-imle    RS-IMLE as its code builds and trains it (--preset rs-imle: its decoder, mapper,
#              optimiser, EMA, pool and rejection rule; batch 4)
# Same data, loss family (perceptual + pixel, at 32 px) and optimizer steps (STEPS, 4,000) in
# every arm. The budget is steps, never minutes: --max-minutes 0, and experiment_report.py
# refuses an arm that stopped short. PARALLEL runs at a time (2), one thread each.
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
launch() {  # name, data, flags...
  local name=$1 data=$2; shift 2
  local cmd="python -m train.train --data $data --out $OUT/$name --max-steps $STEPS --max-minutes 0 --eval-every 500 $*"
  echo "OMP_NUM_THREADS=1 $cmd" >> "$OUT/commands.txt"
  OMP_NUM_THREADS=1 nohup $cmd > "$OUT/$name.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "${PARALLEL:-2}" ]; do sleep 10; done
}
: > "$OUT/commands.txt"
for subset in ${SUBSETS:-faces}; do
  data=$(prepare "$subset")
  for seed in 0 1; do
    launch "$subset-rtm-s$seed" "$data" --preset cpu --seed "$seed"
    launch "$subset-rtm-h1-s$seed" "$data" --preset cpu --seed "$seed" --mapper.num-steps 1
  done
  launch "$subset-mlp" "$data" --preset cpu --mapper.kind mlp
  launch "$subset-rs-imle" "$data" --preset rs-imle --perceptual-size 32
done
wait
echo "done: logs in $OUT/*.log, commands in $OUT/commands.txt; next: bash scripts/evaluate_experiment.sh $OUT"
