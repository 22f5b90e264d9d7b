"""A run's raw generator (its trained weights, not their EMA) as a checkpoint of its own, so
that train.evaluate can measure it beside the G_ema the run saved (docs/EXPERIMENTS.md, the
adversarial runs). The weights come from the run's checkpoint/train_state.pt (what --resume
reads); the new folder's meta.json says that they are the raw ones.

    python scripts/raw_generator.py runs/gan-matched/faces-rtm-m1-s0 --out runs/gan-matched/faces-rtm-m1-s0/raw
    python -m train.evaluate --checkpoint runs/gan-matched/faces-rtm-m1-s0/raw --data data/noto-faces-32 \\
        --num-samples 550 --draws 5 --steps 8
"""

import argparse
from pathlib import Path

from rtm_core import load_checkpoint, save_checkpoint
from train.cli import positional_out
from train.init_from import TRAIN_STATE_FILE, raw_weights


def export_raw(run: Path, out: Path) -> Path:
    folder = run / "checkpoint"
    generator, meta = load_checkpoint(folder)                 # the EMA, its config and meta
    weights = raw_weights(folder)
    if weights is None:
        raise SystemExit(f"{folder / TRAIN_STATE_FILE} is missing: only a training run's checkpoint "
                         "keeps the raw weights")
    generator.load_state_dict(weights)
    return save_checkpoint(generator, out, meta={**meta, "weights": f"raw: 'model' of {TRAIN_STATE_FILE}, not the EMA"})

if __name__ == "__main__":
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the training run's folder (its checkpoint/train_state.pt)")
    parser.add_argument("old_out", type=Path, nargs="?", help=argparse.SUPPRESS)   # OUT as a positional, until the next release
    parser.add_argument("--out", type=Path, help="the new checkpoint folder")
    args = parser.parse_args()
    print(f"wrote {export_raw(args.run, positional_out(parser, args.out, args.old_out))}")
