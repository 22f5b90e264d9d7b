"""Start the app: flags (or environment variables) -> service -> build_demo -> launch.

    python app.py [--host H] [--port P] [--checkpoints FOLDER] [--checkpoint NAME] [--max-batch N]
    rtm-explorer ...            # the same, once `pip install -e .` has run
    rtm-explorer --run runs/mine [--name NAME]   # make a training run app-ready (app/prepare.py) in
                                                 # my_checkpoints/, then open it beside the shipped ones

`start_in_background` runs the same app in this process (tests, benchmarks, screenshots).
Gradio and torch are imported only after the flags are read, so --help and a wrong flag
answer at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]        # the repository (or the Space)
DEFAULT_CHECKPOINTS = ROOT / "checkpoints"         # next to app.py, whatever the working directory
MY_CHECKPOINTS = ROOT / "my_checkpoints"           # the user's app-ready runs (git-ignored; as rtm_core.checkpoint's
                                                   # user_checkpoints(), not imported: --help answers before torch loads)


def default_run_name(run: str) -> str:
    from .prepare import default_name

    return default_name(Path(run))


def checkpoint_names(folder: Path) -> list[str]:
    # A dot-folder is work in progress (train.ship builds beside a folder and swaps it in), never a checkpoint.
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file())


def checkpoint_folders(shipped: Path, mine: Path) -> list[Path]:
    """The folders the app lists: the shipped checkpoints, then the user's own where there is one."""
    return [shipped] + ([mine] if mine.is_dir() and mine.resolve() != shipped.resolve() else [])


def _program_name() -> str:
    """The usage line's program: `rtm-explorer` when run as that entry point, else `python app.py`."""
    return "rtm-explorer" if os.path.basename(sys.argv[0]) == "rtm-explorer" else "python app.py"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=_program_name(),
                                     description="RTM Explorer: watch recursive latent refinement in your browser.")
    parser.add_argument("--host", default=env("RTM_HOST", "0.0.0.0" if env("SPACE_ID") else "127.0.0.1"),
                        help="address to listen on (RTM_HOST; default 127.0.0.1, 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=int(env("RTM_PORT", "7860")), help="port (RTM_PORT; default 7860)")
    parser.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS),
                        help="folder of the shipped checkpoint folders (default: checkpoints/ next to app.py)")
    parser.add_argument("--checkpoint", default=env("RTM_CHECKPOINT", "noto-faces-rtm-64"),
                        help="the checkpoint shown first (RTM_CHECKPOINT; default noto-faces-rtm-64)")
    parser.add_argument("--max-batch", type=int, default=int(env("RTM_MAX_BATCH", "32")),
                        help="new seeds asked for at the same moment share one forward pass, up to this many "
                        "(RTM_MAX_BATCH; default 32; 1 = one after another)")
    parser.add_argument("--my-checkpoints", default=env("RTM_CHECKPOINTS") or str(MY_CHECKPOINTS),
                        help="folder of your own app-ready runs, listed beside --checkpoints (RTM_CHECKPOINTS; "
                        "default: the git-ignored my_checkpoints/ next to app.py)")
    parser.add_argument("--run", default=None, help="a training run's folder (rtm-train's --out): made app-ready under "
                        "--my-checkpoints with quick defaults (python -m app.prepare; minutes), then shown first")
    parser.add_argument("--name", default=None, help="with --run: its name in the app (default: the run folder's name)")
    args = parser.parse_args(argv)
    if not 1 <= args.max_batch <= 256:
        parser.error(f"--max-batch must be between 1 and 256, got {args.max_batch}")
    if args.run:
        from .prepare import is_prepared, prepare

        try:
            folder = Path(args.my_checkpoints)
            folder.mkdir(parents=True, exist_ok=True)
            args.checkpoint = args.name or default_run_name(args.run)
            if not is_prepared(args.run, folder / args.checkpoint):
                prepare(args.run, args.checkpoint, folder=folder)
        except (ValueError, FileNotFoundError) as e:
            parser.error(str(e))
    folder = Path(args.checkpoints)
    if not folder.is_dir():
        parser.error(f"--checkpoints {str(folder)[:200]} is not a folder")
    args.folders = checkpoint_folders(folder, Path(args.my_checkpoints))
    names = sorted(set().union(*(checkpoint_names(f) for f in args.folders)))
    if args.checkpoint not in names:
        parser.error(f"--checkpoint {args.checkpoint[:128]!r} is not under {' or '.join(map(str, args.folders))}; "
                     f"choose one of {names or 'nothing yet: train one first (docs/TRAINING.md)'}")
    return args


def _demo(checkpoints: Path | list[Path], default: str, max_batch: int = 32):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no analytics calls
    from .service import TrajectoryService
    from .ui import build_demo

    service = TrajectoryService(checkpoints, max_batch=max_batch)
    return build_demo(service, default_checkpoint=default).queue(default_concurrency_limit=2)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"   # every server log line: when, how bad, whose


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)     # libraries: warnings and worse
    logging.getLogger("rtm_explorer").setLevel(logging.INFO)           # the app: also what it refused
    from .ui import LAUNCH_KWARGS

    _demo(args.folders, args.checkpoint, args.max_batch).launch(server_name=args.host, server_port=args.port,
                                                          show_error=True, **LAUNCH_KWARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_in_background(checkpoints: Path, default: str):
    """The app in a background thread of this process on a free port: returns (demo, url)."""
    from .ui import LAUNCH_KWARGS

    demo, port = _demo(Path(checkpoints), default), free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True,
                **LAUNCH_KWARGS)
    return demo, f"http://127.0.0.1:{port}/"


if __name__ == "__main__":
    main()
