"""Helpers for the app tests: tiny checkpoints and a live server on a free port."""

import socket
from pathlib import Path

import torch

from app.service import TrajectoryService
from app.ui import LAUNCH_KWARGS, build_demo
from rtm_core import Generator, save_checkpoint, tiny


def make_checkpoints(root: Path) -> Path:
    torch.manual_seed(0)
    save_checkpoint(Generator(tiny("rtm")), root / "tiny-rtm", meta={"step": 5, "data": "none"})
    save_checkpoint(Generator(tiny("mlp")), root / "tiny-mlp")
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
