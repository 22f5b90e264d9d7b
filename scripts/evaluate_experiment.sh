#!/usr/bin/env bash
# Evaluate every finished run of the few-shot experiment that is not evaluated yet
# (scripts/evaluate_arm.sh: h = 1..64, 550 samples in 5 draws) in the drivers' slots
# (scripts/slots.sh: two at a time, one thread each); then print the tables for
# docs/EXPERIMENTS.md. scripts/run_experiment.sh already evaluates each arm as its training
# ends: this is for arms trained some other way, or to print the tables again.
#   bash scripts/evaluate_experiment.sh [runs/fewshot] [run names...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fewshot}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls "$OUT" | grep -v '\.' ))
source scripts/slots.sh
for name in "${names[@]}"; do
  wait_for_slot
  bash scripts/evaluate_arm.sh "$OUT" "$name" &
  sleep 2   # its process is visible to busy() before the next slot is counted
done
finish
