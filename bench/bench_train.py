"""Training benchmarks (not tests: they print figures, assert nothing).

    python bench/bench_train.py                     # ~8 minutes on a 2-core CPU
    python bench/bench_train.py --force-factor 2    # a quicker re-selection measurement

(a) Training throughput, images/s, RTM vs the one-pass MLP mapper with the same decoder,
    in the `cpu` preset's model (32x32) and the app's (64x64).
(b) One full RS-IMLE re-selection for N = 3,926 images (Noto Color Emoji's count) at
    force_factor x N pool samples: pool generation vs nearest-neighbour search.

Results go to bench/results/train.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_results  # noqa: E402

from rtm_core import Generator  # noqa: E402
from train.config import PRESETS, TrainConfig  # noqa: E402
from train.distributed import pick_device, DistInfo  # noqa: E402
from train.imle import RandomProjection, reselect  # noqa: E402


def model_for(preset: str, mapper: str, resolution: int):
    return TrainConfig(**{**PRESETS[preset], "mapper": mapper}).model_config(resolution, 3)


def train_throughput(config, device, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    g = Generator(config).to(device).train()
    opt = torch.optim.AdamW(g.parameters(), lr=1e-4)
    R = config.decoder.img_resolution
    z, target = torch.randn(batch, g.z_dim, device=device), torch.rand(batch, 3, R, R, device=device) * 2 - 1

    def step():
        loss = (g(z) - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force-factor", type=int, default=20, help="pool size / N for (b)")
    parser.add_argument("--steps", type=int, default=15, help="timed optimizer steps per arm in (a)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"training benchmarks on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict = {"device": str(device), "throughput": {}}

    for preset, resolution in (("cpu", 32), ("gpu", 64)):
        row = {}
        for mapper in ("rtm", "mlp"):
            config = model_for(preset, mapper, resolution)
            row[mapper] = train_throughput(config, device, batch=32, steps=args.steps)
        row["rtm_over_mlp"] = row["rtm"] / row["mlp"]
        key = f"{preset}_preset_{resolution}px"
        results["throughput"][key] = row
        print(f"  (a) {key}: RTM {row['rtm']:7.1f} img/s, MLP {row['mlp']:7.1f} img/s "
              f"(RTM runs at {row['rtm_over_mlp']:.2f}x the MLP's rate), batch 32")

    N = 3926
    config = model_for("cpu", "rtm", 32)
    torch.manual_seed(0)
    g = Generator(config).to(device).eval()
    project = RandomProjection(3 * 32 * 32, 800, seed=0, device=device)
    data = project(torch.rand(N, 3, 32, 32, device=device) * 2 - 1)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    sel = reselect(g, data, project, z_dim=g.z_dim, seed=0, round_=0, force_factor=args.force_factor, eps=0.12,
                   latent_noise=0.001, pool_batch=64, info=info)
    total = sel.generate_s + sel.search_s
    results["reselect"] = {"N": N, "force_factor": args.force_factor, "pool": sel.pool_size,
                           "generate_s": sel.generate_s, "search_s": sel.search_s,
                           "generate_share": sel.generate_s / total}
    print(f"  (b) re-selection, N={N}, pool {sel.pool_size} (cpu preset RTM, 32x32): generate+embed "
          f"{sel.generate_s:.1f} s, search {sel.search_s:.1f} s -> generation is "
          f"{100 * sel.generate_s / total:.0f}% of {total:.1f} s")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
