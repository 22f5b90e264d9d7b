"""The README's picture: one seed of the shipped default refining, made with the app's own
GIF export (app/encode.py: gif_bytes, every frame labelled with its step).

    python scripts/readme_gif.py [--checkpoint noto-faces-rtm-64] [--seed 4] [--out docs/refinement.gif]
"""

import argparse
from pathlib import Path

from app.launcher import DEFAULT_CHECKPOINTS
from app.encode import gif_bytes
from app.service import TrajectoryService


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="noto-faces-rtm-64")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", default="docs/refinement.gif")
    args = parser.parse_args()
    result = TrajectoryService(DEFAULT_CHECKPOINTS).trajectory(args.checkpoint, args.seed, None)
    Path(args.out).write_bytes(gif_bytes(result.frames, frame_ms=400))
    print(f"wrote {args.out}: seed {args.seed}, {result.num_steps} steps")


if __name__ == "__main__":
    main()
