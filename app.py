"""RTM Explorer: `python app.py`, then open http://127.0.0.1:7860.

Flags (or environment variables): --host (RTM_HOST), --port (RTM_PORT), --checkpoints
(RTM_CHECKPOINTS, the folder of checkpoint folders), --checkpoint (RTM_CHECKPOINT, the one
shown first). On a Hugging Face Space (SPACE_ID is set) it binds 0.0.0.0.
"""

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no analytics calls

from app.service import TrajectoryService  # noqa: E402
from app.ui import build_demo  # noqa: E402


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="RTM Explorer: watch recursive latent refinement.")
    parser.add_argument("--host", default=env("RTM_HOST", "0.0.0.0" if env("SPACE_ID") else "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("RTM_PORT", "7860")))
    parser.add_argument("--checkpoints", default=env("RTM_CHECKPOINTS", "checkpoints"))
    parser.add_argument("--checkpoint", default=env("RTM_CHECKPOINT", "noto-faces-rtm"))
    args = parser.parse_args()
    service = TrajectoryService(args.checkpoints)
    demo = build_demo(service, default_checkpoint=args.checkpoint)
    demo.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
