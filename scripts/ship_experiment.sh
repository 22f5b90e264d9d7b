#!/usr/bin/env bash
# Ship arms of the few-shot experiment as app checkpoints (checkpoints/noto-SUBSET-ARM, the
# arm's training-seed suffix -sN dropped): export (float16), the app's UMAP map and
# nearest-image set, the evaluation, the model card.
#   bash scripts/ship_experiment.sh animals [runs/fewshot] [ARM ...]   (arms: rtm rtm-h1 mlp)
#   bash scripts/ship_experiment.sh faces runs/fewshot rtm-h1-s0 mlp
# Careful: arm "rtm" of faces replaces the app's default, checkpoints/noto-faces-rtm.
set -euo pipefail
cd "$(dirname "$0")/.."
subset=$1 runs=${2:-runs/fewshot}
arms=("${@:3}"); [ ${#arms[@]} -gt 0 ] || arms=(rtm rtm-h1 mlp)
for arm in "${arms[@]}"; do
  run="$runs/$subset-$arm" ckpt="checkpoints/noto-$subset-${arm%-s[0-9]*}"
  python -m train.export "$run" --out "$ckpt"
  python -m app.projection --checkpoint "$ckpt" --seeds 1000
  python -m train.ship --checkpoint "$ckpt" --data "data/noto-$subset-32"
  python - "$run/checkpoint/eval.json" "$ckpt/eval.json" <<'PY'
import json, sys
evaluation = json.load(open(sys.argv[1]))
evaluation["checkpoint"] = sys.argv[2].rsplit("/", 1)[0]   # the shipped folder, same weights (fp16-rounded)
json.dump(evaluation, open(sys.argv[2], "w"), indent=1)
PY
  python scripts/model_card.py "$ckpt"
done
