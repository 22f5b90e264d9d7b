"""Ship a training run: from its folder to an app-ready checkpoint folder, in one command.

    python -m train.ship runs/mine --out my_checkpoints/mine          # quick: a few minutes on a 2-core CPU
    python -m train.ship runs/long/stage2 --out checkpoints/noto-faces-rtm --full --gate   # a shipped model

The steps, each with its time:
  1. export    the run's EMA weights, float16, no training state (train/export.py)
  2. images    its training images, for the app's nearest-training-image check
  3. evaluate  per refinement step against the training set: quick = 200 samples in 2 draws at
               h = 1, 2, 4, H, no Fréchet distance; --full = the protocol of the shipped models
               (train/protocol.py: 550 samples in 5 draws at 12 step counts, with it)
  4. gate      with --gate: ship only if it measures better than the folder's current model
               (train/gate.py); otherwise the folder is left as it was
  5. map       the app's map: quick = PCA of 256 seeds; --full = UMAP of 1,000 seeds
  6. card      --full: the model card, README.md and samples.png (train/card.py)

Everything is built beside --out and replaces it in one step at the end: a step that fails, a
gate that says no or a kill leaves the folder as it was. Files of the folder that the pipeline
does not make (a model card's notes.md) are kept. `rtm-explorer --run RUN` ships a run this way
(quick) into your own checkpoints folder, and scripts/ship_stage.sh ships a stage of a long run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

from .cli import program_name
from .protocol import PROTOCOL

QUICK = {"num_samples": 200, "draws": 2, "fd": False, "map": "pca", "map_seeds": 256}
# What the pipeline makes: the rest of a folder (a card's notes.md, app.prepare's record) is kept.
MADE = ("config.json", "model.safetensors", "meta.json", "training_images.npz", "eval.json", "projection.npz",
        "README.md", "samples.png", "training_curve.png")
FULL = {"map": "umap", "map_seeds": 1000}       # with the evaluation protocol of train/evaluation.py


class NotShipped(RuntimeError):
    """The gate kept the folder's current model: the new one does not measure better."""


def run_data(run: Path) -> str:
    """The prepared dataset a finished run was trained on, or a ValueError saying what is missing."""
    if not (run / "checkpoint" / "config.json").is_file() or not (run / "train_config.json").is_file():
        raise ValueError(f"{str(run)[:200]} is not a finished training run (no checkpoint/ or train_config.json); "
                         f"train one with: rtm-train --data DATA --out {str(run)[:200]}")
    return json.loads((run / "train_config.json").read_text()).get("data", "")


def ship(run: str | Path, out: str | Path, full: bool = False, gate: bool = False, data: Optional[str] = None,
         say: Callable[[str], None] = print) -> Path:
    """The steps above; returns the checkpoint folder. Raises ValueError for a run or data that is
    not there, NotShipped when the gate keeps the current model."""
    from rtm_core.atomic import swap_in
    from rtm_core.checkpoint import read_config
    from rtm_core.projection import make_projection

    from .export import export_run
    from .gate import compare

    run, out = Path(run), Path(out)
    if data and not (Path(data) / "images.npy").is_file():
        raise ValueError(f"--data {data[:200]} is not a prepared dataset (no images.npy): give the folder "
                         f"rtm-prepare-data wrote for this run")
    data = data or run_data(run)
    if not (Path(data) / "images.npy").is_file():
        raise ValueError(f"the run was trained on {data[:200]!r} (as written when it was trained, relative to the "
                         f"folder it was trained from), which is not here: run this from that folder, or give --data "
                         f"(if the data is gone, prepare it again with rtm-prepare-data)")
    if gate and not full:
        raise ValueError("--gate compares with the protocol's evaluation (train/protocol.py): add --full")
    if gate and not (out / "eval.json").is_file():
        raise ValueError(f"--gate compares with {out / 'eval.json'}, which is not there; ship without --gate")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.shipping")
    shutil.rmtree(staging, ignore_errors=True)              # what an interrupted ship left
    if out.is_dir():                                        # the files this pipeline does not make stay; none of its
        shutil.copytree(out, staging, ignore=lambda _, names: [n for n in names if n in MADE])   # own outlive their model
    steps = ["export", "images", "evaluate"] + (["gate"] if gate else []) + ["map"] + (["card"] if full else [])
    start = time.perf_counter()

    def step(what: str, detail: str, work: Callable[[], str]) -> None:
        k, t0 = steps.index(what) + 1, time.perf_counter()
        say(f"[{k}/{len(steps)}] {what}{detail} ...")
        say(f"[{k}/{len(steps)}] {work()} ({time.perf_counter() - t0:.0f} s)")

    settings = {**PROTOCOL, **FULL} if full else QUICK
    try:
        step("export", "", lambda: export_run(run, staging).replace(str(staging), str(out)))
        step("images", "", lambda: ship_training_images(staging, data))
        H = read_config(staging).mapper.trained_steps
        eval_steps = sorted(set(settings.get("steps") or (1, 2, 4)) | {H})
        step("evaluate", f" ({settings['num_samples']} samples in {settings['draws']} draws)",
             lambda: evaluate(staging, out, run, data, eval_steps, settings))
        if gate:
            step("gate", "", lambda: gate_line(compare(staging / "eval.json", out / "eval.json"), out))
        step("map", f" ({settings['map'].upper()} of {settings['map_seeds']} seeds)",
             lambda: map_line(*make_projection(staging, settings["map_seeds"], settings["map"])))
        if full:
            from .card import write_card
            step("card", "", lambda: write_card(staging, name=out.name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out)
    say(f"shipped in {time.perf_counter() - start:.0f} s: {out}")
    return out


def evaluate(staging: Path, out: Path, run: Path, data: str, steps: list[int], settings: dict) -> str:
    """eval.json into the checkpoint; the HTML report into the run's folder (it is the run's record)."""
    from .evaluation import run as run_evaluation

    result = run_evaluation([str(staging)], data, steps, settings["num_samples"], str(run),
                            draws=settings["draws"], fd=settings["fd"], progress=False)[0]
    result["checkpoint"] = str(out)                         # where it is shipped, not where it was built
    (staging / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
    H = result["trained_steps"]
    at_h = next(p for p in result["per_step"] if p["steps"] == H)
    return (f"eval.json: at H = {H} precision {at_h['precision']:.2f}, recall {at_h['recall']:.2f}, "
            f"coverage {at_h['coverage']:.2f}, {at_h['distinct_nearest']} of 100 seeds distinct; "
            f"the report: {run / 'eval_report.html'}")


def gate_line(verdict: tuple[bool, list[str]], out: Path) -> str:
    better, lines = verdict
    if not better:
        raise NotShipped(f"not shipped: it does not measure better than {out} (kept as it was):\n  " + "\n  ".join(lines))
    return "better than the current model: " + "; ".join(lines)


def map_line(path: Path, points: int) -> str:
    return f"{path.name}: {points} reference points"


def ship_training_images(checkpoint: str | Path, data_dir: str | Path) -> str:
    """Write training_images.npz (the prepared images, uint8, and one text label each) into the
    checkpoint folder; returns a summary line. Raises ValueError if the data's size or channels
    are not the model's."""
    import numpy as np

    from rtm_core.checkpoint import TRAINING_IMAGES_FILE, read_config

    from .data import load_prepared

    config, images = read_config(checkpoint), load_prepared(data_dir)
    if (images.resolution, images.channels) != (config.decoder.img_resolution, config.decoder.img_channels):
        raise ValueError(f"the data is {images.resolution}px x {images.channels} channels but the model makes "
                         f"{config.decoder.img_resolution}px x {config.decoder.img_channels}")
    items = images.manifest.get("items", [])
    labels = np.array([str(i.get("text") or i.get("file") or i.get("index", "")) for i in items] or [""] * len(images))
    path = Path(checkpoint) / TRAINING_IMAGES_FILE
    np.savez_compressed(path, images=images.images, labels=labels)
    return f"{path.name}: {len(images)} images, {path.stat().st_size / 1e6:.1f} MB"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-ship", "train.ship"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", type=Path, help="the training run's folder (rtm-train's --out)")
    parser.add_argument("--out", type=Path, help="the checkpoint folder to write (replaced whole at the end)")
    parser.add_argument("--data", help="the prepared dataset (default: the one the run was trained on)")
    parser.add_argument("--full", action="store_true", help="the full evaluation, the UMAP map and the model card")
    parser.add_argument("--gate", action="store_true", help="ship only if it measures better than --out's model")
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)   # the images step alone, as before: until the next release
    args = parser.parse_args(argv)
    if args.checkpoint:
        if not args.data:
            parser.error("--checkpoint needs --data")
        print("note: `train.ship --checkpoint C --data D` (the training images alone) is deprecated; "
              "`train.ship RUN --out C` ships a run whole", flush=True)
        try:
            print(ship_training_images(args.checkpoint, args.data))
        except ValueError as e:
            parser.exit(1, f"error: {e}\n")
        return
    if args.run is None or args.out is None:
        parser.error("give the run's folder and --out")
    try:
        ship(args.run, args.out, full=args.full, gate=args.gate, data=args.data)
    except (ValueError, FileNotFoundError, NotShipped) as e:
        parser.exit(1, f"error: {e}\n")


if __name__ == "__main__":
    main()
