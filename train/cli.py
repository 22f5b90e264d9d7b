"""What the command-line tools share (light: no torch, so --help answers at once)."""

from __future__ import annotations

import os
import sys


def program_name(script: str, module: str) -> str:
    """The usage line's program: `rtm-train` when run as that entry point, else `python -m train.train`."""
    return script if os.path.basename(sys.argv[0]) == script else f"python -m {module}"
