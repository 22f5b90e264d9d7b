"""Benchmarks of rtm_core on this machine (not tests: they print figures, assert nothing).

    python -m bench.bench_core.py            # ~1 minute on a 2-core CPU
    python -m bench.bench_core.py --quick    # fewer repeats

(a) One seed's whole trajectory in the app's default configuration (64x64, H=8, L=2):
    the mapper's 8 steps plus decoding all 9 frames (steps 0..8) in one batch.
(b) The two ModulatedConv2d formulations, "scaled" vs "grouped", at several widths.
(c) RTM vs the one-pass MLP mapper: parameters and cost per sample.
(d) The app's 32x32 decoder in NCHW and in channels-last layout (what app/service.py uses).
(e) The app's own path for new seeds (rtm_core.batch_invariant_trajectory: fixed-shape chunks, so a
    seed has the same bits in any batch) on every shipped RTM checkpoint: one seed's 9 frames,
    and 20 seeds together (twenty visitors' new seeds in one micro-batch).

Figures are medians of repeated runs; compare ratios within one run, since the machine
is shared and noisy. Results go to bench/results/core.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


from bench.common import write_results

from rtm_core import Generator, app_default, seeds_to_z, trajectory
from rtm_core.layers import ModulatedConv2d
from rtm_core.mapper import build_mapper


def timed(fn, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median and 90th percentile of fn()'s wall time, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))]}


@torch.no_grad()
def bench_trajectory(repeats: int) -> dict:
    results = {}
    for mapper in ("rtm", "mlp"):
        for decoder in ("stylegan2", "imle"):
            g = Generator(app_default(mapper, decoder)).eval()
            z = seeds_to_z([42], g.z_dim)
            steps = 8  # the MLP's trajectory is flat after step 1, but we decode 9 frames for both
            mapper_only = timed(lambda: trajectory(g, z, steps, decode=False), repeats)
            full = timed(lambda: trajectory(g, z, steps), repeats)
            key = f"{mapper}+{decoder}"
            results[key] = {"mapper_ms": mapper_only["median_ms"], **full,
                            "frames": steps + 1, "parameters": g.parameter_counts()}
            print(f"  (a) {key:15s} trajectory of 9 frames: median {full['median_ms']:6.1f} ms "
                  f"(p90 {full['p90_ms']:6.1f}; mapper alone {mapper_only['median_ms']:5.1f} ms)")
    return results


def bench_modconv(repeats: int) -> dict:
    """One 3x3 ModulatedConv2d on 32x32 maps: inference, and forward+backward (training)."""
    results = {}
    for mode, batches in (("inference", (1, 9, 32)), ("training", (32,))):
        for channels in (64, 128, 256):
            for batch in batches:
                conv = ModulatedConv2d(channels, channels, 3, w_dim=512)
                x, w = torch.randn(batch, channels, 32, 32, requires_grad=True), torch.randn(batch, 512)

                def run():
                    if mode == "inference":
                        with torch.no_grad():
                            conv(x, w)
                    else:
                        conv.zero_grad(set_to_none=True)
                        conv(x, w).square().mean().backward()

                row = {}
                for impl in ("scaled", "grouped"):
                    conv.impl = impl
                    row[impl] = timed(run, repeats)["median_ms"]
                row["grouped_over_scaled"] = row["grouped"] / row["scaled"]
                results[f"{mode}_c{channels}_b{batch}"] = row
                print(f"  (b) {mode:9s} {channels:3d} ch, batch {batch:2d}: scaled {row['scaled']:7.2f} ms, "
                      f"grouped {row['grouped']:7.2f} ms, grouped/scaled {row['grouped_over_scaled']:5.2f}x")
    return results


def bench_mappers(repeats: int) -> dict:
    results = {}
    batch = 64
    z = torch.randn(batch, 512)
    for kind in ("rtm", "mlp"):
        mapper = build_mapper(app_default(kind).mapper)
        with torch.no_grad():
            infer = timed(lambda: mapper(z), repeats)["median_ms"]

        def train_step():
            mapper.zero_grad(set_to_none=True)
            mapper(z).square().mean().backward()

        train = timed(train_step, repeats)["median_ms"]
        results[kind] = {"parameters": mapper.num_parameters(), "steps": mapper.num_steps,
                         "inference_us_per_sample": infer * 1e3 / batch,
                         "train_us_per_sample": train * 1e3 / batch}
        print(f"  (c) {kind}: {mapper.num_parameters() / 1e6:5.2f} M parameters, "
              f"{results[kind]['inference_us_per_sample']:7.1f} us/sample inference, "
              f"{results[kind]['train_us_per_sample']:7.1f} us/sample forward+backward (batch {batch})")
    results["rtm_over_mlp_inference"] = results["rtm"]["inference_us_per_sample"] / results["mlp"]["inference_us_per_sample"]
    results["rtm_over_mlp_train"] = results["rtm"]["train_us_per_sample"] / results["mlp"]["train_us_per_sample"]
    print(f"      RTM / MLP cost: {results['rtm_over_mlp_inference']:.1f}x inference, "
          f"{results['rtm_over_mlp_train']:.1f}x training (short gradient: only the last step is differentiated)")
    return results


@torch.no_grad()
def bench_memory_format(repeats: int) -> dict:
    """(d) The app's decoding (the cpu preset's 32x32 model, as shipped): NCHW against
    channels-last, taking turns so that a burst of load on the machine hits both alike."""
    import copy

    from train.config import PRESETS, TrainConfig

    g = Generator(TrainConfig(**PRESETS["cpu"]).model_config(32, 3)).eval()
    last = copy.deepcopy(g).to(memory_format=torch.channels_last)
    results = {}
    for images in (16, 180):     # a small batch (one seed's frames, padded); 20 seeds x 9 frames
        w = torch.randn(images, g.w_dim)
        times = {"contiguous": [], "channels_last": []}
        for _ in range(repeats):
            for name, model in (("contiguous", g), ("channels_last", last)):
                times[name].append(timed(lambda: model.synthesize(w), 1, warmup=0)["median_ms"])
        row = {name: statistics.median(t) for name, t in times.items()}
        row["channels_last_over_contiguous"] = row["channels_last"] / row["contiguous"]
        results[f"images_{images}"] = row
        print(f"  (d) decode {images:3d} images at 32x32: NCHW {row['contiguous']:6.1f} ms, channels-last "
              f"{row['channels_last']:6.1f} ms ({row['channels_last_over_contiguous']:.2f}x)")
    return results


@torch.no_grad()
def bench_service_path(repeats: int) -> dict:
    """(e) batch_invariant_trajectory on each shipped checkpoint, loaded as the app loads it."""
    from pathlib import Path

    from rtm_core import batch_invariant_trajectory
    from rtm_core import load_checkpoint

    results = {}
    for folder in sorted(p for p in Path("checkpoints").iterdir() if (p / "config.json").is_file()):
        g, _ = load_checkpoint(folder)
        g.eval().to(memory_format=torch.channels_last)
        steps, res = g.config.mapper.num_steps, g.config.decoder.img_resolution
        row = {"resolution": res, "steps": steps}
        for seeds in (1, 20):
            z = seeds_to_z(list(range(seeds)), g.z_dim)
            row[f"seeds_{seeds}"] = timed(lambda: batch_invariant_trajectory(g, z, steps), max(3, repeats // 5))
        results[folder.name] = row
        print(f"  (e) {folder.name:22s} {res:3d}px, {steps + 1} frames: one new seed "
              f"{row['seeds_1']['median_ms']:6.1f} ms, 20 seeds {row['seeds_20']['median_ms']:7.1f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--out", default="bench/results/core.json", help="where to write the JSON results")
    args = parser.parse_args()
    repeats = 5 if args.quick else 25
    torch.manual_seed(0)
    print(f"rtm_core benchmarks: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    results = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats,
        "trajectory": bench_trajectory(repeats),
        "modconv": bench_modconv(repeats),
        "mappers": bench_mappers(repeats),
        "memory_format": bench_memory_format(repeats),
        "service_path": bench_service_path(repeats),
    }
    target = results["trajectory"]["rtm+stylegan2"]["median_ms"]
    print(f"\nTarget (a) <= 150 ms median for rtm+stylegan2: {target:.1f} ms -> "
          f"{'met' if target <= 150 else 'NOT met'}")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
