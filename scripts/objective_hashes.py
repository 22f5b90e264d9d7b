"""Fingerprints of short training runs, one per objective: run before and after a change to the
training code that should not change the numbers, and compare the lines.

    python scripts/objective_hashes.py --out /tmp/hashes   # prints one line per run and tensor group

Each run is the objective's `tiny` preset on scikit-learn's digits (offline) with one thread, so
the numbers depend only on the code, torch's version and the CPU's instruction set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

RUNS = {
    "imle": ["--preset", "tiny"],
    "imle-cosine": ["--preset", "tiny", "--lr-schedule", "cosine"],
    "imle-perceptual": ["--preset", "tiny", "--loss-perceptual", "1", "--perceptual-size", "32", "--max-steps", "12"],
    "adversarial": ["--objective", "adversarial", "--preset", "tiny"],
    "adversarial-pl": ["--objective", "adversarial", "--preset", "tiny", "--pl-weight", "2", "--pl-every", "2"],
}
# Older train states named the adversarial generator's weights G and G_ema.
SAME = {"G": "model", "G_ema": "ema"}


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(run: Path) -> dict[str, str]:
    ckpt = run / "checkpoint"
    ema = load_file(ckpt / "model.safetensors")
    state = torch.load(ckpt / "train_state.pt", map_location="cpu", weights_only=True)
    state = {SAME.get(k, k): v for k, v in state.items()}
    out = {"checkpoint": digest(ema[k] for k in sorted(ema)), "raw": digest(state["model"][k] for k in sorted(state["model"]))}
    if "D" in state:
        out["discriminator"] = digest(state["D"][k] for k in sorted(state["D"]))
    if state.get("latents") is not None:
        out["latents"] = digest([state["latents"]])
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in last if "loss" in r or "loss_G" in r][-1]
    out["last_log"] = " ".join(f"{k}={last[k]:.6g}" for k in sorted(last) if k.startswith(("loss", "d_", "pixel", "grad")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a folder for the runs and the digits")
    parser.add_argument("--tree", default=".", help="the checkout whose training code runs (default: this one)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    from train.data import prepare_digits
    data = out / "digits-16"
    if not data.exists():
        prepare_digits(16, data)
    for name, flags in RUNS.items():
        run = out / name
        subprocess.run([sys.executable, "-m", "train.train", "--data", str(data), "--out", str(run), "--threads", "1",
                        "--no-progress", "--overwrite", *flags], check=True, capture_output=True, cwd=args.tree)
        for group, value in fingerprint(run).items():
            print(f"{name:15s} {group:14s} {value}")


if __name__ == "__main__":
    main()
