"""What the command-line tools share (light: no torch, so --help answers at once).

Every command follows one convention (docs/CLI.md): inputs are positionals or named flags, what
it writes is `--out`, `--help` exits 0, a usage error exits 2 with the usage line, and a failure
while working exits 1 with one `error: ...` line.
"""

from __future__ import annotations

import os
import sys


def program_name(script: str, module: str) -> str:
    """The usage line's program: `rtm-train` when run as that entry point, else `python -m train.train`."""
    return script if os.path.basename(sys.argv[0]) == script else f"python -m {module}"


def positional_out(parser, out, positional):
    """--out, or the output given as the positional it used to be (accepted until the next release,
    with a note); a usage error when both or neither are given."""
    if out is not None and positional is not None:
        parser.error("give the output once, as --out")
    if out is None and positional is None:
        parser.error("the following arguments are required: --out")
    if positional is not None:
        print(f"note: the output as a positional is deprecated; write --out {positional}", file=sys.stderr)
    return out if out is not None else positional
