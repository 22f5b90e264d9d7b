#!/usr/bin/env bash
# The full evaluation of one finished arm of the few-shot experiment, per refinement step
# h = 1..64 (EVAL_STEPS): 550 samples in 5 draws of 110 against the run's training set, one thread. Skipped
# (exit 0) while the arm is unfinished, or when its eval.json is newer than its weights.
#   bash scripts/evaluate_arm.sh runs/fewshot faces-rtm-s0
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1 name=$2
ckpt="$OUT/$name/checkpoint"
# Finished: the step reached planned_steps in meta.json (older runs without it count as finished).
if ! python -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(m['step'] < m.get('planned_steps', m['step']))" \
    "$ckpt/meta.json" 2>/dev/null; then echo "$name: not finished, not evaluated"; exit 0; fi
if [ "$ckpt/eval.json" -nt "$ckpt/model.safetensors" ]; then echo "$name: evaluated already"; exit 0; fi
data=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['data'])" "$OUT/$name/train_config.json")
cmd="python -m train.evaluate --checkpoint $ckpt --data $data --num-samples 550 --draws 5 --steps ${EVAL_STEPS:-1,2,3,4,8,16,32,64}"
echo "$name: evaluating"
echo "OMP_NUM_THREADS=1 $cmd" >> "$OUT/eval_commands.txt"
OMP_NUM_THREADS=1 $cmd > "$OUT/$name.eval.log" 2>&1
