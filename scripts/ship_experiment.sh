#!/usr/bin/env bash
# Ship arms of the few-shot experiment as app checkpoints (checkpoints/noto-SUBSET-ARM, the
# arm's training-seed suffix -sN dropped), each through the shipping pipeline in full
# (train/ship.py: export, training images, the protocol's evaluation, the UMAP map, the card).
#   bash scripts/ship_experiment.sh animals [runs/fewshot] [ARM ...]   (arms: rtm rtm-h1 mlp)
#   bash scripts/ship_experiment.sh faces runs/fewshot rtm-h1-s0 mlp
# Careful: arm "rtm" of faces replaces checkpoints/noto-faces-rtm.
set -euo pipefail
cd "$(dirname "$0")/.."
subset=$1 runs=${2:-runs/fewshot}
arms=("${@:3}"); [ ${#arms[@]} -gt 0 ] || arms=(rtm rtm-h1 mlp)
for arm in "${arms[@]}"; do
  python -m train.ship "$runs/$subset-$arm" --out "checkpoints/noto-$subset-${arm%-s[0-9]*}" \
    --data "data/noto-$subset-32" --full
done
