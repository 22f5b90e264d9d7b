"""Training of an RTM (or one-pass MLP) generator: one loop (train/trainer.py) with RS-IMLE or,
with --objective adversarial, StyleGAN2's objective (train/objectives/).

Prepare data once, then train:

    python -m train.data noto-emoji --resolution 32 --out data/noto-emoji-32
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-rtm               # CPU, about 62 min
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-mlp --mapper.kind mlp  # the baseline
    python -m train.train --preset gpu --data data/noto-emoji-64 --out runs/emoji64-rtm             # one GPU
    torchrun --nproc_per_node=8 -m train.train --preset gpu --data data/noto-emoji-64 --out runs/x  # 8 GPUs
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-rtm --resume      # continue

The loop, top to bottom: every `resample_every` epochs, re-select each image's latent
(RS-IMLE, train/imle.py); then train on (image, latent) pairs with a perceptual distance
+ pixel L2 (train/losses.py; weights 1.0 / 1.0 in the cpu and gpu presets, pixel L2 alone
in the tiny preset), AdamW,
warmup, gradient clipping and an EMA of the weights. The run folder gets metrics.jsonl,
samples/ (for fixed seeds, the image after steps 1..H) and checkpoint/ (the EMA weights in
the rtm_core format, plus train_state.pt with everything --resume needs).
"""

from __future__ import annotations

import shlex
import sys
from typing import Optional

from .cli import program_name
from .config import parse_args


def main(argv: Optional[list[str]] = None) -> None:
    cfg = parse_args(argv)  # before importing torch: --help and bad flags answer at once
    if not cfg.data:
        raise SystemExit("error: --data is required (a folder made by `python -m train.data ...`)")
    from rtm_core import read_meta

    from .distributed import rank_from_environment
    from .run import TrainingDiverged
    from .trainer import train

    try:
        folder = train(cfg)
    except (TrainingDiverged, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"checkpoint: {folder}")
    meta = read_meta(folder) if rank_from_environment() == 0 else {}
    if meta.get("step", 0) < meta.get("planned_steps", 0):   # under torchrun: the same flags after torchrun's own
        given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
        command = shlex.join([*program_name("rtm-train", "train.train").split(), *given]
                             + ([] if cfg.resume else ["--resume"]))
        print(f"stopped short: {meta['step']} of {meta['planned_steps']} steps. To continue where it stopped "
              f"(for another --max-minutes):\n  {command}")


if __name__ == "__main__":
    main()
