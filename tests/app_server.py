"""Test fixtures for the app: tiny checkpoints, one with hostile labels (the server itself is
app.launcher.start_in_background)."""

from pathlib import Path

import numpy as np
import torch

from app.launcher import start_in_background
from rtm_core import Generator, save_checkpoint, tiny
from rtm_core.checkpoint import TRAINING_IMAGES_FILE

HOSTILE_LABEL = '<img src=x onerror="window.__xss = 1">'


def make_checkpoints(root: Path) -> Path:
    """tiny-rtm (with training images whose labels are markup, as a hostile file would carry) and tiny-mlp."""
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "tiny-rtm", meta={"step": 5, "data": "none"})
    save_checkpoint(Generator(tiny("mlp")), root / "tiny-mlp")
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    np.savez_compressed(root / "tiny-rtm" / TRAINING_IMAGES_FILE, images=images, labels=np.array([HOSTILE_LABEL] * 6))
    return root


def launch(root: Path, default: str = "tiny-rtm"):
    """Start the app on `root` in this process (a background thread); returns (demo, url)."""
    return start_in_background(root, default)
