"""The same seeds through two checkpoints, every refinement step, side by side (the 32x32 model
beside the 64x64 one, to show what the extra pixels hold).

    python scripts/side_by_side.py checkpoints/noto-faces-rtm checkpoints/noto-faces-rtm-64 \
        --out docs/side_by_side_32_64.webp [--seeds 16]

OUT ending in .webp is written as lossless WebP (a fifth smaller than the PNG at 16 seeds), any
other suffix as PIL saves it (.png: optimised PNG). Both keep every pixel.

A row per seed (0, 1, ...): A's frames at steps 0..H, a gap, then B's. The smaller checkpoint's
frames are scaled up with nearest-neighbour sampling to the larger's size, so both are drawn
pixel for pixel: a 32x32 frame shows as 2x2 blocks beside a 64x64 one, as in the app.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from train.cli import positional_out
from rtm_core import image_grid, load_checkpoint, seeds_to_z, to_uint8, trajectory

GAP, HEADER = 16, 20


def frames(folder: Path, seeds: list[int]) -> tuple[np.ndarray, str]:
    """uint8 (seeds, H + 1, R, R, C): every step of each seed, and a label for the header."""
    generator, _ = load_checkpoint(folder)
    images = trajectory(generator, seeds_to_z(seeds, generator.z_dim)).images         # (H + 1, B, C, R, R)
    cells = np.stack([to_uint8(step) for step in images], axis=1)
    res = cells.shape[2]
    return cells, f"{folder.name}: {res}x{res}, steps 0-{len(images) - 1}"


def upscale(cells: np.ndarray, size: int) -> np.ndarray:
    factor = size // cells.shape[2]
    if factor * cells.shape[2] != size:
        raise SystemExit(f"cannot draw {cells.shape[2]} px frames beside {size} px ones pixel for pixel")
    return cells.repeat(factor, axis=2).repeat(factor, axis=3)


def side_by_side(a: Path, b: Path, seeds: list[int]) -> Image.Image:
    (cells_a, label_a), (cells_b, label_b) = frames(a, seeds), frames(b, seeds)
    size = max(cells_a.shape[2], cells_b.shape[2])
    grids = [image_grid(upscale(c, size)) for c in (cells_a, cells_b)]
    if grids[0].shape[2] != grids[1].shape[2]:
        raise SystemExit("the two checkpoints must both be colour or both greyscale")
    height = HEADER + max(g.shape[0] for g in grids)
    canvas = Image.new("RGB", (grids[0].shape[1] + GAP + grids[1].shape[1], height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for grid, label in zip(grids, (label_a, label_b)):
        canvas.paste(Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid), (x, HEADER))
        draw.text((x + 4, 4), label, fill="black")
        x += grid.shape[1] + GAP
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("checkpoints", type=Path, nargs="+", metavar="A B", help="the two checkpoint folders, left and right")
    parser.add_argument("--out", type=Path, help="the image to write (.webp: lossless WebP; else as PIL saves it)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds 0..N-1, a row each")
    args = parser.parse_args()
    legacy = args.checkpoints[0] if len(args.checkpoints) == 3 else None   # OUT A B, until the next release
    if len(args.checkpoints) - (legacy is not None) != 2:
        parser.error("give two checkpoint folders, A and B")
    args.a, args.b = args.checkpoints[-2:]
    args.out = positional_out(parser, args.out, legacy)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    image = side_by_side(args.a, args.b, list(range(args.seeds)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".webp":
        image.save(args.out, lossless=True, method=6)
    else:
        image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.width}x{image.height}, {args.out.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
