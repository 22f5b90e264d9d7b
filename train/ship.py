"""Ship a checkpoint's training images for the app's memorisation check.

    python -m train.ship --checkpoint checkpoints/noto-faces-rtm --data data/noto-faces-32

writes `training_images.npz` (the prepared images, uint8, and one text label each) next to
the checkpoint; the app (app/nearest.py) shows the three nearest to every final frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np

from .data import load_prepared


def ship_training_images(checkpoint: str | Path, data_dir: str | Path) -> str:
    """Write training_images.npz into the checkpoint folder; returns a summary line. Raises
    ValueError if the data's size or channels are not the model's."""
    from rtm_core.checkpoint import TRAINING_IMAGES_FILE, read_config   # torch: only once the flags are read

    config, data = read_config(checkpoint), load_prepared(data_dir)
    if (data.resolution, data.channels) != (config.decoder.img_resolution, config.decoder.img_channels):
        raise ValueError(f"the data is {data.resolution}px x {data.channels} channels but the model makes "
                         f"{config.decoder.img_resolution}px x {config.decoder.img_channels}")
    items = data.manifest.get("items", [])
    labels = np.array([str(i.get("text") or i.get("file") or i.get("index", "")) for i in items] or [""] * len(data))
    path = Path(checkpoint) / TRAINING_IMAGES_FILE
    np.savez_compressed(path, images=data.images, labels=labels)
    return f"wrote {path}: {len(data)} images, {path.stat().st_size / 1e6:.1f} MB"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m train.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder; training_images.npz is written into it")
    parser.add_argument("--data", required=True, help="the prepared dataset the checkpoint was trained on")
    args = parser.parse_args(argv)
    try:
        print(ship_training_images(args.checkpoint, args.data))
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
