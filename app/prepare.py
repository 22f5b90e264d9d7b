"""Make a training run app-ready in one command, with quick defaults (a couple of minutes on a
2-core CPU), then open it: `rtm-explorer --run runs/mine` does both.

    python -m app.prepare runs/mine                  # -> my_checkpoints/mine
    python -m app.prepare runs/mine --name faces-v1  # under the name you choose
    python -m app.prepare runs/mine --full           # the full evaluation and the UMAP map (hours / minutes)

Four steps, each with its time:
  1. export    the run's EMA weights, float16, no training state (train.export)
  2. images    its training images, for the app's nearest-training-image check (train.ship)
  3. evaluate  against the training set, per refinement step (the app's metric curves): quick =
               200 samples in 2 draws at h = 1, 2, 4, H, no Fréchet distance; --full = 550 in 5
               draws at 12 step counts, with it
  4. map       the map's reference cloud: quick = PCA of 256 seeds; --full = UMAP of 1,000 seeds

The checkpoint goes to $RTM_CHECKPOINTS, or else to the project's git-ignored my_checkpoints/
(never among the shipped checkpoints/, which git tracks); the app lists both. A folder of that
name made from another run, or a shipped checkpoint's name, is never taken (choose another --name).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Callable, Optional

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
QUICK = {"num_samples": 200, "draws": 2, "map": "pca", "map_seeds": 256}
FULL = {"num_samples": 550, "draws": 5, "map": "umap", "map_seeds": 1000}
MADE_FROM = "prepared_from.json"   # which run a prepared folder came from: never overwrite another's


def checkpoints_folder() -> Path:
    """Where prepared runs go: $RTM_CHECKPOINTS, else the project's git-ignored my_checkpoints/."""
    from rtm_core.checkpoint import user_checkpoints

    return user_checkpoints()


def default_name(run: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", run.resolve().name)[:64] or "my-run"


def check_run(run: Path) -> str:
    """The run's data folder, or a ValueError saying what is missing."""
    if not (run / "checkpoint" / "config.json").is_file() or not (run / "train_config.json").is_file():
        raise ValueError(f"{str(run)[:200]} is not a finished training run (no checkpoint/ or train_config.json); "
                         f"train one with: rtm-train --data DATA --out {str(run)[:200]}")
    data = json.loads((run / "train_config.json").read_text()).get("data", "")
    if not (Path(data) / "images.npy").is_file():
        raise ValueError(f"the run was trained on {data[:200]!r}, which is not here any more; "
                         f"prepare it again with rtm-prepare-data, to the same folder")
    return data


def is_prepared(run: str | Path, out: Path) -> bool:
    """out was prepared from this run, after the run's last checkpoint was written."""
    made_from, weights = out / MADE_FROM, Path(run) / "checkpoint" / "model.safetensors"
    if not (made_from.is_file() and weights.is_file()):
        return False
    record = json.loads(made_from.read_text())
    return (record.get("run") == str(Path(run).resolve()) and record.get("complete", False)
            and made_from.stat().st_mtime >= weights.stat().st_mtime)


def prepare(run: str | Path, name: Optional[str] = None, full: bool = False, folder: Optional[Path] = None,
            say: Callable[[str], None] = print) -> Path:
    """Steps 1-4 above; returns the checkpoint folder."""
    run = Path(run)
    name = name or default_name(run)
    if not NAME.fullmatch(name):
        raise ValueError(f"--name must be 1-64 letters, digits, '.', '_' or '-' (not starting with one of the last "
                         f"three), got {name[:80]!r}")
    data = check_run(run)
    from rtm_core.checkpoint import PROJECT_CHECKPOINTS

    if (PROJECT_CHECKPOINTS / name / "config.json").is_file():
        raise ValueError(f"{name!r} is a shipped checkpoint's name; choose another --name")
    out = (folder or checkpoints_folder()) / name
    made_from = out / MADE_FROM
    if out.exists() and (not made_from.is_file() or json.loads(made_from.read_text())["run"] != str(run.resolve())):
        raise ValueError(f"{out} exists and was not prepared from {run}; choose another --name")
    settings = FULL if full else QUICK
    start = time.perf_counter()

    def step(k: int, what: str, work: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        say(f"[{k}/4] {what} ...")
        say(f"[{k}/4] {work()} ({time.perf_counter() - t0:.0f} s)")

    from train.export import export_run
    from train.ship import ship_training_images

    step(1, "export", lambda: export_run(run, out))
    made_from.write_text(json.dumps({"run": str(run.resolve()), "complete": False}) + "\n")   # ours from now on
    step(2, "training images", lambda: ship_training_images(out, data))
    step(3, f"evaluate ({settings['num_samples']} samples in {settings['draws']} draws)",
         lambda: evaluate(out, data, settings, full))
    step(4, f"map ({settings['map'].upper()} of {settings['map_seeds']} seeds)", lambda: make_map(out, settings))
    made_from.write_text(json.dumps({"run": str(run.resolve()), "complete": True}) + "\n")
    say(f"ready in {time.perf_counter() - start:.0f} s: {out} (open it with: rtm-explorer --checkpoint {name})")
    return out


def evaluate(out: Path, data: str, settings: dict, full: bool) -> str:
    from rtm_core import read_config
    from train.evaluation import run as run_evaluation

    H = read_config(out).mapper.trained_steps
    steps = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64] if full else sorted({1, 2, 4, H})
    result = run_evaluation([str(out)], data, steps, settings["num_samples"], str(out), draws=settings["draws"],
                            fd=full)[0]
    at_h = next(p for p in result["per_step"] if p["steps"] == H)
    return (f"eval.json: at H = {H} precision {at_h['precision']:.2f}, recall {at_h['recall']:.2f}, "
            f"coverage {at_h['coverage']:.2f}, {at_h['distinct_nearest']} of 100 seeds distinct")


def make_map(out: Path, settings: dict) -> str:
    from .projection import make_projection

    path, points = make_projection(out, settings["map_seeds"], settings["map"])
    return f"wrote {path} ({points} reference points)"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m app.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run's folder (the --out of rtm-train)")
    parser.add_argument("--name", default=None, help="the name the app shows (default: the run folder's name)")
    parser.add_argument("--full", action="store_true", help="the full evaluation and the UMAP map (far slower)")
    args = parser.parse_args(argv)
    try:
        prepare(args.run, args.name, args.full)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
