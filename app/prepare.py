"""Make a training run app-ready in one command, with quick defaults (a couple of minutes on a
2-core CPU), then open it: `rtm-explorer --run runs/mine` does both.

    python -m app.prepare runs/mine                  # -> my_checkpoints/mine
    python -m app.prepare runs/mine --name faces-v1  # under the name you choose
    python -m app.prepare runs/mine --full           # the full evaluation, the UMAP map and a model card

This names the run and finds it a folder; the work is the shipping pipeline's (train/ship.py:
export, training images, evaluation, map), the one that ships the project's own checkpoints.
The checkpoint goes to $RTM_CHECKPOINTS, or else to the project's git-ignored my_checkpoints/
(never among the shipped checkpoints/, which git tracks); the app lists both. A folder of that
name made from another run, or a shipped checkpoint's name, is never taken (choose another --name).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Callable, Optional

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MADE_FROM = "prepared_from.json"   # which run a prepared folder came from: never overwrite another's


def default_name(run: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", run.resolve().name)[:64] or "my-run"


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
    """The run shipped under `name` into `folder` (default: the user's checkpoints); returns its folder."""
    run = Path(run)
    name = name or default_name(run)
    if not NAME.fullmatch(name):
        raise ValueError(f"--name must be 1-64 letters, digits, '.', '_' or '-' (not starting with one of the last "
                         f"three), got {name[:80]!r}")
    from rtm_core.checkpoint import PROJECT_CHECKPOINTS, user_checkpoints

    if (PROJECT_CHECKPOINTS / name / "config.json").is_file():
        raise ValueError(f"{name!r} is a shipped checkpoint's name; choose another --name")
    out = (folder or user_checkpoints()) / name
    made_from = out / MADE_FROM
    if out.exists() and (not made_from.is_file() or json.loads(made_from.read_text())["run"] != str(run.resolve())):
        raise ValueError(f"{out} exists and was not prepared from {run}; choose another --name")
    from train.ship import ship

    ship(run, out, full=full, say=say)
    made_from.write_text(json.dumps({"run": str(run.resolve()), "complete": True}) + "\n")   # ours from now on
    say(f"ready: {out} (open it with: rtm-explorer --checkpoint {name})")
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m app.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run's folder (the --out of rtm-train)")
    parser.add_argument("--name", default=None, help="the name the app shows (default: the run folder's name)")
    parser.add_argument("--full", action="store_true", help="the full evaluation, the UMAP map and a model card (far slower)")
    args = parser.parse_args(argv)
    try:
        prepare(args.run, args.name, args.full)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(1, f"error: {e}\n")


if __name__ == "__main__":
    main()
