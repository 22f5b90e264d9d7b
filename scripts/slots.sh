# Sourced by the experiment drivers (run_experiment.sh, run_adversarial.sh): arms share
# PARALLEL slots (2) of one thread each, counted over every process training or evaluating on
# this machine, so a second driver (or another experiment) never oversubscribes the cores. In one slot an arm trains
# (or continues from its last checkpoint: --resume, exact), then gets its full evaluation
# (scripts/evaluate_arm.sh). An arm still training under an earlier driver is left to it and
# evaluated when it ends. The driver sets OUT, STEPS and COMMON (the flags of every arm).

steps_done() {  # run folder -> the step of its last checkpoint (0 if none)
  python -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$1/checkpoint/meta.json" 2>/dev/null || echo 0
}
training() { pgrep -f "python -m train\.train .*--out $OUT/$1 " > /dev/null; }
busy() { pgrep -fc "python -m train\.(train|evaluate) " || true; }   # any run on this machine holds a core
pending=()   # arms an earlier driver's process is still training
start_pending_evaluations() {
  local still=() name
  for name in "${pending[@]}"; do
    if training "$name"; then still+=("$name"); else bash scripts/evaluate_arm.sh "$OUT" "$name" & sleep 2; fi
  done
  pending=("${still[@]}")
}
wait_for_slot() { while start_pending_evaluations; [ "$(busy)" -ge "${PARALLEL:-2}" ]; do sleep 10; done; }
launch() {  # name, data, flags...: train the arm (or continue it), then evaluate it, in one slot
  local name=$1 data=$2; shift 2
  # ARMS="a b" runs only those arms (e.g. after a machine change lost the run folder)
  if [ -n "${ARMS:-}" ] && [[ " $ARMS " != *" $name "* ]]; then return; fi
  if training "$name"; then echo "$name: training (started earlier)"; pending+=("$name"); return; fi
  local done_steps; done_steps=$(steps_done "$OUT/$name")
  wait_for_slot
  if [ "$done_steps" -ge "$STEPS" ]; then
    echo "$name: trained ($done_steps steps)"; bash scripts/evaluate_arm.sh "$OUT" "$name" &
  else
    # Its checkpoint continues; a folder an earlier attempt left before its first checkpoint is moved aside.
    local resume=""; [ -d "$OUT/$name" ] && resume="--overwrite"
    [ -f "$OUT/$name/checkpoint/train_state.pt" ] && resume="--resume"
    local cmd="python -m train.train --data $data --out $OUT/$name --max-steps $STEPS --max-minutes 0 $COMMON $* $resume"
    echo "$name: from step $done_steps"
    echo "OMP_NUM_THREADS=1 $cmd" >> "$OUT/commands.txt"
    ( OMP_NUM_THREADS=1 $cmd >> "$OUT/$name.log" 2>&1 && bash scripts/evaluate_arm.sh "$OUT" "$name" ) &
  fi
  sleep 2   # its process is visible to busy() before the next slot is counted
}
finish() {  # every arm trained and evaluated, then the report's tables
  while [ ${#pending[@]} -gt 0 ]; do start_pending_evaluations; sleep 10; done
  wait
  echo "done: logs in $OUT/*.log, commands in $OUT/commands.txt and eval_commands.txt"
  python scripts/experiment_report.py "$OUT"
}
