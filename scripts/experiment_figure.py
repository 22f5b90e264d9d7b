"""The experiment's figure: each arm's sample grid at its last step, side by side, labelled.

    python scripts/experiment_figure.py docs/experiment_samples.png runs/fewshot/faces-rs-imle \
        runs/fewshot/faces-mlp runs/fewshot/faces-rtm-h1-s0 runs/fewshot/faces-rtm-s0

A grid is the run's newest `samples/step_*.png` (rows: seeds 0-7; an RTM arm's columns are its
steps 1..H), scaled up 3x with nearest-neighbour sampling so that 32x32 pixels stay crisp.
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SCALE, GAP, HEADER = 3, 24, 22


def last_grid(run: Path) -> tuple[Image.Image, str]:
    grids = sorted((run / "samples").glob("step_*.png"))
    if not grids:
        raise SystemExit(f"{run} has no samples/step_*.png: is it a training run folder?")
    step = int(grids[-1].stem.split("_")[1])
    image = Image.open(grids[-1]).convert("RGB")
    return image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST), f"{run.name} · {step:,}"


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, runs = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
    panels = [last_grid(run) for run in runs]
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
