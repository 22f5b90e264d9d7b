#!/usr/bin/env bash
# Evaluate every finished run of the few-shot experiment (scripts/run_experiment.sh) per
# refinement step, h = 1..64: 550 samples in 5 draws of 110 against the run's training set.
# Two at a time, one thread each; then print the tables for docs/EXPERIMENTS.md. Arms still
# training are skipped, and so are arms evaluated since their last weights: run it again as
# arms finish.
#   bash scripts/evaluate_experiment.sh [runs/fewshot] [run names...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fewshot}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls "$OUT" | grep -v '\.' ))
for name in "${names[@]}"; do
  ckpt="$OUT/$name/checkpoint"
  # Only finished arms (runs older than planned_steps in meta.json count as finished), and only
  # once: an eval.json newer than the weights is kept.
  if ! python -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(m['step'] < m.get('planned_steps', m['step']))" \
      "$ckpt/meta.json" 2>/dev/null; then echo "$name: not finished, skipped"; continue; fi
  if [ "$ckpt/eval.json" -nt "$ckpt/model.safetensors" ]; then echo "$name: evaluated already"; continue; fi
  data=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['data'])" "$OUT/$name/train_config.json")
  echo "OMP_NUM_THREADS=1 python -m train.evaluate --checkpoint $OUT/$name/checkpoint --data $data --num-samples 550 --draws 5 --steps 1,2,3,4,8,16,32,64" >> "$OUT/eval_commands.txt"
  OMP_NUM_THREADS=1 python -m train.evaluate --checkpoint "$OUT/$name/checkpoint" --data "$data" \
    --num-samples 550 --draws 5 --steps 1,2,3,4,8,16,32,64 > "$OUT/$name.eval.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "${PARALLEL:-2}" ]; do sleep 5; done
done
wait
python scripts/experiment_report.py "$OUT"
