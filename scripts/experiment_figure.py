"""The experiment's figure: each arm's sample grid at its last step, side by side, labelled.

    python scripts/experiment_figure.py runs/fewshot/faces-rs-imle runs/fewshot/faces-mlp \
        runs/fewshot/faces-rtm-h1-s0 runs/fewshot/faces-rtm-s0 --out docs/experiment_samples.png
    python scripts/experiment_figure.py --over-training runs/gan/... --out docs/gan_over_training.png

A grid is the run's newest `samples/step_*.png` (rows: seeds 0-7; an RTM arm's columns are its
steps 1..H), scaled up 3x with nearest-neighbour sampling so that 32x32 pixels stay crisp.
With --over-training each arm's panel is instead its final frames (the grid's last column)
at every saved training step, left to right.
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from train.cli import positional_out

SCALE, GAP, HEADER = 3, 24, 22


def saved_grids(run: Path) -> list[Path]:
    grids = sorted((run / "samples").glob("step_*.png"))
    if not grids:
        raise SystemExit(f"{run} has no samples/step_*.png: is it a training run folder?")
    return grids


def step_of(grid: Path) -> int:
    return int(grid.stem.split("_")[1])


def scaled(image: Image.Image) -> Image.Image:
    return image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)


def last_grid(run: Path) -> tuple[Image.Image, str]:
    grid = saved_grids(run)[-1]
    return scaled(Image.open(grid).convert("RGB")), f"{run.name} · {step_of(grid):,}"


def final_frames_over_training(run: Path) -> tuple[Image.Image, str]:
    """The last column of every saved grid (an RTM arm's step H; a one-pass arm's only one),
    side by side. A grid has 2 px of padding around 32 px cells (torchvision's make_grid)."""
    grids = saved_grids(run)
    columns = []
    for grid in grids:
        image = Image.open(grid).convert("RGB")
        cell = image.height // 8                      # 8 seeds per grid: cell + padding, 34 px at 32x32
        columns.append(image.crop((image.width - cell - 2, 0, image.width, image.height)))
    panel = Image.new("RGB", (sum(c.width for c in columns), columns[0].height), "white")
    for i, column in enumerate(columns):
        panel.paste(column, (i * columns[0].width, 0))
    steps = [step_of(g) for g in grids]
    span = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}..{steps[-1]:,}"
    return scaled(panel), f"{run.name} · {span}"


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="the arms' training run folders, left to right")
    parser.add_argument("--out", type=Path, help="the figure to write (PNG)")
    parser.add_argument("--over-training", action="store_true", help="each arm's final frames at every saved step")
    args = parser.parse_args()
    runs = args.runs
    legacy = runs.pop(0) if args.out is None and runs and runs[0].suffix.lower() == ".png" else None   # OUT RUN..., until the next release
    if not runs:
        parser.error("give at least one run folder")
    out = positional_out(parser, args.out, legacy)
    panel_of = final_frames_over_training if args.over_training else last_grid
    panels = [panel_of(run) for run in runs]
    # Each panel's slot is as wide as its grid or its label, whichever is wider: a one-pass
    # arm's grid is one column, narrower than its name.
    label_width = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    slots = [max(p.width, int(label_width(label)) + 4) for p, label in panels]
    figure = Image.new("RGB", (sum(slots) + GAP * (len(panels) - 1), HEADER + max(p.height for p, _ in panels)), "white")
    draw, x = ImageDraw.Draw(figure), 0
    for (panel, label), slot in zip(panels, slots):
        figure.paste(panel, (x, HEADER))
        draw.text((x + 2, 4), label, fill=(40, 40, 40))
        x += slot + GAP
    figure.save(out)
    print(f"wrote {out}: {figure.width} x {figure.height}")


if __name__ == "__main__":
    main()
