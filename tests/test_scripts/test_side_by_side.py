"""scripts/side_by_side.py: the same seeds through a 16 px and a 32 px checkpoint, every step."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rtm_core import Generator, load_checkpoint, save_checkpoint, seeds_to_z, tiny, to_uint8, trajectory

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "scripts" / "side_by_side.py")
sbs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sbs)


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    small = tiny("rtm")
    big = dataclasses.replace(small, decoder=dataclasses.replace(
        small.decoder, img_resolution=32, block_spec=small.decoder.block_spec + ",32m16,32x1"))
    torch.manual_seed(0)
    for name, config in (("small", small), ("big", big)):
        save_checkpoint(Generator(config), root / name)
    return root / "small", root / "big"


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_every_step_of_the_same_seeds_pixel_for_pixel(two_sizes, tmp_path, monkeypatch, suffix):
    small, big = two_sizes
    out = tmp_path / f"sbs{suffix}"
    monkeypatch.setattr(sys, "argv", ["side_by_side.py", str(small), str(big), "--out", str(out), "--seeds", "3"])
    sbs.main()
    image = np.asarray(Image.open(out).convert("RGB"))
    steps = 4                                                     # tiny: H = 3, so steps 0..3
    half = steps * 34 + 2                                         # image_grid: 32 px cells, 2 px padding
    assert image.shape == (sbs.HEADER + 3 * 34 + 2, 2 * half + sbs.GAP, 3)
    for folder, x0, factor in ((small, 0, 2), (big, half + sbs.GAP, 1)):
        generator, _ = load_checkpoint(folder)
        frames = trajectory(generator, seeds_to_z([0, 1, 2], generator.z_dim)).images
        for seed in (0, 2):
            for step in (0, steps - 1):
                y, x = sbs.HEADER + 2 + 34 * seed, x0 + 2 + 34 * step
                cell = image[y:y + 32, x:x + 32]
                expected = to_uint8(frames[step])[seed].repeat(factor, 0).repeat(factor, 1)
                assert np.array_equal(cell, expected), (folder.name, seed, step)


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(SystemExit, match="pixel for pixel"):
        sbs.upscale(np.zeros((1, 1, 24, 24, 3), np.uint8), 64)
