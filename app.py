"""RTM Explorer: `python app.py`, then open http://127.0.0.1:7860.

Flags (or environment variables): --host (RTM_HOST), --port (RTM_PORT), --checkpoints
(RTM_CHECKPOINTS, the folder of checkpoint folders), --checkpoint (RTM_CHECKPOINT, the one
shown first). On a Hugging Face Space (SPACE_ID is set) it binds 0.0.0.0.
"""

import argparse
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="RTM Explorer: watch recursive latent refinement in your browser.")
    parser.add_argument("--host", default=env("RTM_HOST", "0.0.0.0" if env("SPACE_ID") else "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=int(env("RTM_PORT", "7860")), help="port (default 7860)")
    parser.add_argument("--checkpoints", default=env("RTM_CHECKPOINTS", str(HERE / "checkpoints")),
                        help="folder of checkpoint folders (default: checkpoints/ next to this file)")
    parser.add_argument("--checkpoint", default=env("RTM_CHECKPOINT", "noto-faces-rtm"),
                        help="the checkpoint shown first (default noto-faces-rtm)")
    args = parser.parse_args(argv)
    if not Path(args.checkpoints).is_dir():
        parser.error(f"--checkpoints {args.checkpoints} is not a folder")
    names = sorted(p.name for p in Path(args.checkpoints).iterdir() if (p / "config.json").is_file())
    if args.checkpoint not in names:
        parser.error(f"--checkpoint {args.checkpoint[:128]!r} is not under {args.checkpoints}; "
                     f"choose one of {names or 'nothing: train one first (docs/TRAINING.md)'}")
    return args


def main() -> None:
    args = parse_args()  # before the heavy imports: --help and bad flags answer at once
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no analytics calls

    from app.service import TrajectoryService
    from app.ui import LAUNCH_KWARGS, build_demo

    demo = build_demo(TrajectoryService(args.checkpoints), default_checkpoint=args.checkpoint)
    demo.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, show_error=True,
                                                   **LAUNCH_KWARGS)


if __name__ == "__main__":
    main()
