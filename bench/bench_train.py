"""Training benchmarks (not tests: they print figures, assert nothing).

    python bench/bench_train.py                     # ~6 minutes on a 2-core CPU
    OMP_NUM_THREADS=1 python bench/bench_train.py   # as the experiment's arms run: one thread each

(a) Cost of one optimizer step, RTM (H = 8) vs RTM H = 1 vs the RS-IMLE MLP baseline, same
    decoder, at the settings the experiment used (cpu preset: 32x32, batch 16, perceptual +
    0.1 x pixel loss) and with pixel L2 only; and at the app's 64x64 model.
(b) RS-IMLE pool generation, samples/s: as it was (no_grad, batches of 64) and as it is now
    (inference_mode, batches of pool_batch), in one run so the ratio is fair; plus one full
    re-selection for N = 3,926 images (Noto Color Emoji's count) at force_factor x N.

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
from train.imle import RandomProjection, generate_pool_features, reselect  # noqa: E402
from train.losses import ImageLoss  # noqa: E402


ARMS = {"rtm": {}, "rtm_h1": {"num_steps": 1}, "mlp": {"kind": "mlp"}}


def model_for(preset: str, mapper: dict, resolution: int):
    return TrainConfig(**{**PRESETS[preset], "mapper": mapper}).model_config(resolution, 3)


def train_throughput(config, device, batch: int, steps: int, loss_fn: ImageLoss) -> float:
    torch.manual_seed(0)
    g = Generator(config).to(device).train()
    opt = torch.optim.AdamW(g.parameters(), lr=1e-4)
    R = config.decoder.img_resolution
    z, target = torch.randn(batch, g.z_dim, device=device), torch.rand(batch, 3, R, R, device=device) * 2 - 1

    def step():
        loss = loss_fn(g(z), target)["loss"]
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


def pool_rate(g: Generator, project, count: int, batch: int, inference: bool) -> float:
    """Samples/s of generating and embedding `count` pool samples, the old way or the new."""
    z = torch.randn(count, g.z_dim)
    if inference:
        start = time.perf_counter()
        generate_pool_features(g, z, project, batch)
    else:
        start = time.perf_counter()
        with torch.no_grad():
            torch.cat([project(g(chunk)) for chunk in z.split(batch)])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force-factor", type=int, default=4, help="pool size / N for the full re-selection in (b)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per arm in (a)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"training benchmarks on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict = {"device": str(device), "threads": torch.get_num_threads(), "step": {}}

    cpu = PRESETS["cpu"]
    losses = {"rs_imle": ImageLoss(cpu["loss_perceptual"], cpu["loss_pixel"], cpu["perceptual_size"]).to(device),
              "pixel": ImageLoss(0.0, 1.0).to(device)}
    for preset, resolution, batch, loss in (("cpu", 32, 16, "rs_imle"), ("cpu", 32, 16, "pixel"), ("gpu", 64, 32, "pixel")):
        row = {arm: train_throughput(model_for(preset, mapper, resolution), device, batch, args.steps, losses[loss])
               for arm, mapper in ARMS.items()}
        row["rtm_step_cost_over_mlp"] = row["mlp"] / row["rtm"]
        key = f"{preset}_model_{resolution}px_batch{batch}_{loss}_loss"
        results["step"][key] = row
        print(f"  (a) {key}: img/s RTM {row['rtm']:6.1f}, RTM H=1 {row['rtm_h1']:6.1f}, MLP {row['mlp']:6.1f} "
              f"-> an RTM step costs {row['rtm_step_cost_over_mlp']:.2f}x an MLP step")

    N = 3926
    torch.manual_seed(0)
    project = RandomProjection(3 * 32 * 32, 800, seed=0, device=device)
    results["pool"] = {}
    for arm in ("rtm", "mlp"):
        g = Generator(model_for("cpu", ARMS[arm], 32)).to(device).eval()
        old = pool_rate(g, project, 1024, 64, inference=False)
        new = pool_rate(g, project, 1024, cpu.get("pool_batch", TrainConfig.pool_batch), inference=True)
        results["pool"][arm] = {"old_samples_per_s": old, "new_samples_per_s": new, "speedup": new / old}
        print(f"  (b) pool generation, {arm}: {old:6.1f} -> {new:6.1f} samples/s ({new / old:.2f}x)")
    g = Generator(model_for("cpu", ARMS["rtm"], 32)).to(device).eval()
    data = project(torch.rand(N, 3, 32, 32, device=device) * 2 - 1)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    sel = reselect(g, data, project, z_dim=g.z_dim, seed=0, round_=0, force_factor=args.force_factor, eps=0.12,
                   latent_noise=0.001, pool_batch=TrainConfig.pool_batch, info=info)
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
