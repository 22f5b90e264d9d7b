"""The training step of another checkout against this one, taking turns in one run: on a shared,
noisy machine a ratio means something only when both sides are measured together.

    git worktree add /tmp/before <ref>
    python -m bench.bench_versus --before /tmp/before [--rounds 2] [--objective imle]
    python -m bench.bench_versus --before /tmp/before --search    # the selection round's search

Each side runs in its own process, from its own tree, one thread: setup of the `cpu` preset on
103 synthetic 32x32 images, one selection round, then one loop iteration as both trees make it
(the objective's step and the EMA): ATen operators and host syncs per iteration (bench/counters.py
of this tree) and the median seconds of --steps iterations after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import importlib.util, json, sys, time, torch
sys.path.insert(0, {tree!r})
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("counters", {root!r} + "/bench/counters.py")   # this tree's counters
counters = importlib.util.module_from_spec(spec); spec.loader.exec_module(counters)
HostSyncs, OpCounter = counters.HostSyncs, counters.OpCounter
from train import trainer
from train.config import ADVERSARIAL_PRESETS, PRESETS, TrainConfig
from train.run import update_ema
preset = PRESETS["cpu"] if {objective!r} == "imle" else ADVERSARIAL_PRESETS["cpu"]
run = trainer.setup(TrainConfig(**{{**preset, "data": {data!r}, "out": {out!r}, "progress": False, "threads": 1}}))
if hasattr(run.objective, "select_latents"):
    run.objective.select_latents(run)
rows = torch.arange(run.per_rank_batch) % run.data.shape[0]

def iteration():
    metrics = run.objective.step(run, rows, 1.0)
    update_ema(run.ema, run.model, 0.999)
    return metrics

for _ in range(2):
    iteration()
with HostSyncs() as syncs, OpCounter() as ops:
    iteration()
times = []
for _ in range({steps}):
    start = time.perf_counter(); iteration(); times.append(time.perf_counter() - start)
print(json.dumps({{"operators": ops.total, "host_syncs": syncs.total, "seconds": sorted(times)[len(times) // 2]}}))
"""


SEARCH = r"""
import json, sys, time, torch
import torch.nn.functional as F
sys.path.insert(0, {tree!r})
torch.set_num_threads(1)
from train.imle import select_nearest
g = torch.Generator().manual_seed(0)
out = {{}}
for n, knn in ((103, 0), (3926, 0), (3926, 5), (10000, 0), (10000, 5)):
    data = F.normalize(torch.randn(n, 800, generator=g), dim=1)
    pool = F.normalize(torch.randn(4096, 800, generator=g), dim=1)
    eps = float(torch.cdist(data[:200], pool).min(0).values.quantile(0.2))   # rejects about a fifth
    times = []
    for _ in range(3):
        start = time.perf_counter(); select_nearest(data, pool, eps, knn_ignore=knn); times.append(time.perf_counter() - start)
    out[f"N={{n}} {{'knn' if knn else 'any'}}"] = min(times)
print(json.dumps(out))
"""


def search(tree: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", SEARCH.format(tree=str(tree))], capture_output=True, text=True,
                          cwd=tree, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the search in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(tree: Path, objective: str, data: str, steps: int) -> dict:
    out = tempfile.mkdtemp(prefix="rtm-versus-")
    script = MEASURE.format(tree=str(tree), root=str(ROOT), objective=objective, data=data, out=out + "/run", steps=steps)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tree, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the step in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the other checkout (a git worktree of the ref to compare)")
    parser.add_argument("--objective", choices=("imle", "adversarial"), default="imle")
    parser.add_argument("--rounds", type=int, default=2, help="turns each side takes")
    parser.add_argument("--steps", type=int, default=5, help="timed iterations per turn (the median counts)")
    parser.add_argument("--search", action="store_true",
                        help="instead: one pool block's nearest-neighbour search (train/imle.py's select_nearest), "
                             "4,096 samples in 800 dimensions against N images, best of 3")
    args = parser.parse_args()
    sides = {"before": Path(args.before).resolve(), "after": ROOT}
    if args.search:
        runs = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, tree in sides.items():
                runs[side].append(search(tree))
        for case in runs["after"][0]:
            before, after = (min(r[case] for r in runs[side]) for side in sides)
            print(f"select_nearest, {case}, one thread: {1000 * before:.0f} -> {1000 * after:.0f} ms "
                  f"(after / before {after / before:.2f})")
        return
    from bench.bench_train import synthetic_data

    data = synthetic_data(Path(tempfile.mkdtemp(prefix="rtm-versus-data-")), 103, 32)
    results = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, tree in sides.items():
            results[side].append(measure(tree, args.objective, data, args.steps))
            print(f"{side:6s} {results[side][-1]}", flush=True)
    before, after = (statistics.median(r["seconds"] for r in results[s]) for s in sides)
    print(f"{args.objective}, cpu preset, one thread: operators {results['before'][0]['operators']:,} -> "
          f"{results['after'][0]['operators']:,}; host syncs {results['before'][0]['host_syncs']} -> "
          f"{results['after'][0]['host_syncs']}; s per iteration {before:.3f} -> {after:.3f} "
          f"(after / before {after / before:.2f})")


if __name__ == "__main__":
    main()
