"""Helpers for the app tests: tiny checkpoints and a live server on a free port."""

import socket
from pathlib import Path

import numpy as np
import torch

from app.nearest import TRAINING_IMAGES_FILE
from app.service import TrajectoryService
from app.ui import LAUNCH_KWARGS, build_demo
from rtm_core import Generator, save_checkpoint, tiny


HOSTILE_LABEL = '<img src=x onerror="window.__xss = 1">'


def make_checkpoints(root: Path) -> Path:
    """tiny-rtm (with training images whose labels are markup, as a hostile file would carry) and tiny-mlp."""
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "tiny-rtm", meta={"step": 5, "data": "none"})
    save_checkpoint(Generator(tiny("mlp")), root / "tiny-mlp")
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    np.savez_compressed(root / "tiny-rtm" / TRAINING_IMAGES_FILE, images=images, labels=np.array([HOSTILE_LABEL] * 6))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root: Path, default: str = "tiny-rtm"):
    """Start the app in this process (a background thread); returns (demo, url)."""
    demo = build_demo(TrajectoryService(root), default_checkpoint=default)
    port = free_port()
    demo.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1", server_port=port,
                                                    prevent_thread_lock=True, quiet=True, show_error=True,
                                                    **LAUNCH_KWARGS)
    return demo, f"http://127.0.0.1:{port}/"
