"""Run a module as if this machine had a CUDA device: on the stand-in (tests/fake_cuda.py).

    python tests/as_cuda.py -m bench.bench_train --device cuda --sections f --quick --cuda-graph

bench/gpu_check.sh --cpu-smoke runs its GPU command lines this way, so that their CUDA paths
(a device string, a graph capture, a sync) fail on this CPU before they fail on a lent GPU.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_cuda import fake_cuda  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit("usage: python tests/as_cuda.py -m MODULE [ARGS...]")
    module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
    with fake_cuda():
        runpy.run_module(module, run_name="__main__", alter_sys=True)
