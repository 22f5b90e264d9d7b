"""The checkpoints under checkpoints/ load, are documented, and stay small."""

from pathlib import Path

import numpy as np
import pytest
import torch

from app.nearest import load_training_images
from rtm_core.projection import load_projection
from rtm_core import load_checkpoint, seeds_to_z, trajectory

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p for p in ROOT.iterdir() if (p / "config.json").is_file()) if ROOT.is_dir() else []


def test_the_app_default_is_shipped():
    assert (ROOT / "noto-faces-rtm" / "config.json").is_file()


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoint(folder):
    generator, meta = load_checkpoint(folder)
    assert all(p.dtype == torch.float32 for p in generator.parameters())
    assert meta["step"] > 0 and meta["storage_dtype"] == "float16"
    tr = trajectory(generator, seeds_to_z([0, 1], generator.z_dim), 16)
    assert torch.isfinite(tr.images).all()
    projection = load_projection(folder)
    assert projection is not None and projection.ref_ws.shape[1] == generator.w_dim
    assert np.isfinite(projection.place(tr.ws[:, 0].numpy())).all()
    assert load_training_images(folder).images.shape[1] == generator.img_resolution
    card = (folder / "README.md").read_text()
    assert "## Training" in card and "## Metrics" in card and (folder / "samples.png").is_file()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 25e6, f"{folder.name} is {size / 1e6:.1f} MB; keep shipped checkpoints under 25 MB"
