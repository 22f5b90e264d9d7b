"""Test fixtures for the app: tiny checkpoints, one with hostile labels (the server itself is
app.launcher.start_in_background)."""

import json
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
    # Made-up metric curves (the page draws them and marks the viewer's step on them).
    rows = [{"steps": h, "precision": 0.2 * h, "recall": 0.1 * h, "density": 0.3 * h, "coverage": 0.15 * h}
            for h in (1, 2, 3, 4)]
    (root / "tiny-rtm" / "eval.json").write_text(json.dumps({"per_step": rows}))
    return root


def launch(root: Path, default: str = "tiny-rtm"):
    """Start the app on `root` in this process (a background thread); returns (demo, url)."""
    return start_in_background(root, default)
