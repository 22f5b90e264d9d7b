"""Training benchmarks (not tests: they print figures, assert nothing).

    OMP_NUM_THREADS=1 python -m bench.bench_train   # as the experiment's arms run: one thread each
                                                  # (~15 minutes on this 2-core CPU; +~8 with --compile-step)

(a) Cost of one optimizer step, RTM (H = 8) vs RTM H = 1 vs the RS-IMLE MLP baseline, same
    decoder, at the settings the experiment used (cpu preset: 32x32, batch 16, perceptual +
    pixel loss) and with pixel L2 only; and at the app's 64x64 model. --compile-step adds
    the cpu-preset step under torch.compile.
(b) RS-IMLE pool generation, samples/s: the old way (no_grad, batches of 64) and the training
    loop's (generate_pool_features) at several batch sizes and torch.compile'd (--compile),
    in one run so the ratios are fair; plus one full re-selection for N = 3,926 images
    (Noto Color Emoji's count) at force_factor x N.
(c) Adversarial training img/s (train/objectives/adversarial.py, cpu preset, G + D steps, lazy R1 and lazy
    path-length regularisation): RTM vs StyleGAN2's mapping network, and RTM without the
    path-length term and noise inputs (what they cost).
(f) The training loop's own step (train.trainer.setup + training_step: the objective's step and the EMA, as
    a run makes them), on whatever device this runs: images/s, counted FLOP per image (FlopCounterMode), achieved FLOP/s and
    its share of the device's peak, host syncs and ATen operators per step, peak memory, and
    the first step's time (compile included) apart from the throughput. Configurations: the
    103-face recipe (32x32, --preset cpu), 32x32 at batch 256 and 64x64 at batch 256 (the gpu
    preset's model), on synthetic prepared data of that size. --cuda-graph: the first again,
    captured as a CUDA graph (train/graphed.py). --quick: a few steps of a tiny model
    (bench/gpu_check.sh --cpu-smoke).
(e) The replicated experiment's arms at their own settings (scripts/run_experiment.sh): seconds
    per optimizer step and pool samples/s of RTM (cpu preset, batch 16) and of RS-IMLE's own
    arm (--preset rs-imle: its 29 M-parameter generator, batch 4), and what a 4,000-step run
    of each costs in wall time on 103 images (steps + re-selection rounds).

Results go to bench/results/train.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Optional

import torch

from bench.common import write_results
from rtm_core import Generator
from train.config import PRESETS, TrainConfig
from train.distributed import pick_device, DistInfo
from train.imle import RandomProjection, generate_pool_features, reselect
from train.losses import ImageLoss
from train.objectives.rs_imle import resample_interval


ARMS = {"rtm": {}, "rtm_h1": {"num_steps": 1}, "mlp": {"kind": "mlp"}}


def model_for(preset: str, mapper: dict, resolution: int):
    return TrainConfig(**{**PRESETS[preset], "mapper": mapper}).model_config(resolution, 3)


def step_timer(config, device, batch: int, loss_fn: ImageLoss, compile: bool = False):
    """run(n): n optimizer steps of one generator, returns seconds per step (after 3 warm-up steps)."""
    torch.manual_seed(0)
    g = Generator(config).to(device).train()
    opt = torch.optim.AdamW(g.parameters(), lr=1e-4)
    model = torch.compile(g, dynamic=False) if compile else g
    R = config.decoder.img_resolution
    z, target = torch.randn(batch, g.z_dim, device=device), torch.rand(batch, 3, R, R, device=device) * 2 - 1

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            loss = loss_fn(model(z), target)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    run(3)
    return run


def throughputs(configs: dict, device, batch: int, loss_fn: ImageLoss, steps: int, rounds: int,
                compile: bool = False) -> dict:
    """img/s per arm: the arms take turns for `rounds` rounds of `steps` steps, and the median round
    counts, so that a burst of load on a shared machine hits every arm alike."""
    timers = {arm: step_timer(config, device, batch, loss_fn, compile) for arm, config in configs.items()}
    seconds: dict = {arm: [] for arm in configs}
    for _ in range(rounds):
        for arm, run in timers.items():
            seconds[arm].append(run(steps))
    return {arm: batch / statistics.median(s) for arm, s in seconds.items()}


def adversarial_rates(steps: int, rounds: int) -> dict:
    """img/s of adversarial training (G step + D step + lazy R1 every 16th) at the cpu preset, RTM
    vs StyleGAN2's mapping network, taking turns as in (a)."""
    import tempfile

    from rtm_core.config import stylegan2_mapping
    from train import trainer
    from train.config import ADVERSARIAL_PRESETS
    from train.data import prepare_digits

    folder = prepare_digits(32, Path(tempfile.mkdtemp(prefix="rtm-bench-")) / "digits-32")
    arms = {"rtm": {}, "stylegan2_mapping": {"mapper": stylegan2_mapping(), "mapping_lr_scale": 1.0},
            # what two of StyleGAN2's pieces cost: path-length regularisation and noise inputs
            "rtm_without_pl_and_noise": {"pl_weight": 0.0,
                                         "decoder": {**ADVERSARIAL_PRESETS["cpu"]["decoder"], "noise": False}}}
    runs = {arm: trainer.setup(TrainConfig(**{**ADVERSARIAL_PRESETS["cpu"], "data": str(folder), "out": str(folder / arm),
                                                  "progress": False, **changes}))
            for arm, changes in arms.items()}

    def run_steps(run, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            idx = torch.randint(0, run.data.shape[0], (run.per_rank_batch,))
            run.objective.step(run, idx, 1.0)
            run.step += 1
        return (time.perf_counter() - start) / n

    for run in runs.values():
        run_steps(run, 2)
    seconds: dict = {arm: [] for arm in runs}
    for _ in range(rounds):
        for arm, run in runs.items():
            seconds[arm].append(run_steps(run, steps))
    rates = {arm: runs[arm].cfg.batch_size / statistics.median(s) for arm, s in seconds.items()}
    rates["rtm_step_cost_over_stylegan2_mapping"] = rates["stylegan2_mapping"] / rates["rtm"]
    rates["pl_and_noise_step_cost"] = rates["rtm_without_pl_and_noise"] / rates["rtm"]
    print(f"  (c) adversarial, cpu preset 32x32 batch 16: img/s RTM {rates['rtm']:.1f}, StyleGAN2 mapping "
          f"{rates['stylegan2_mapping']:.1f} -> an RTM step costs {rates['rtm_step_cost_over_stylegan2_mapping']:.2f}x; "
          f"RTM without path-length regularisation and noise {rates['rtm_without_pl_and_noise']:.1f} -> "
          f"they cost {rates['pl_and_noise_step_cost']:.2f}x")
    return rates


def pool_rate(g: torch.nn.Module, project, count: int, batch: int, inference: bool) -> float:
    """Samples/s of generating and embedding `count` pool samples: the old way (no_grad) or the
    training loop's (generate_pool_features, under reselect's no_grad)."""
    z = torch.randn(count, g.z_dim)
    with torch.no_grad():
        generate_pool_features(g, z[:batch], project, batch)          # warm-up (and compile, if compiled)
        start = time.perf_counter()
        if inference:
            generate_pool_features(g, z, project, batch)
        else:
            torch.cat([project(g(chunk)) for chunk in z.split(batch)])
    return count / (time.perf_counter() - start)


def step_costs(args, device) -> dict:
    """(a) img/s of one optimizer step per arm, and RTM's cost over the MLP's."""
    cpu, results = PRESETS["cpu"], {}
    losses = {"rs_imle": ImageLoss(cpu["loss_perceptual"], cpu["loss_pixel"], cpu["perceptual_size"]).to(device),
              "pixel": ImageLoss(0.0, 1.0).to(device)}
    for preset, resolution, batch, loss in (("cpu", 32, 16, "rs_imle"), ("cpu", 32, 16, "pixel"), ("gpu", 64, 32, "pixel")):
        row = throughputs({arm: model_for(preset, mapper, resolution) for arm, mapper in ARMS.items()}, device, batch,
                          losses[loss], args.steps, args.rounds)
        row["rtm_step_cost_over_mlp"] = row["mlp"] / row["rtm"]
        key = f"{preset}_model_{resolution}px_batch{batch}_{loss}_loss"
        results[key] = row
        print(f"  (a) {key}: img/s RTM {row['rtm']:6.1f}, RTM H=1 {row['rtm_h1']:6.1f}, MLP {row['mlp']:6.1f} "
              f"-> an RTM step costs {row['rtm_step_cost_over_mlp']:.2f}x an MLP step")
    if args.compile_step:
        row = throughputs({arm: model_for("cpu", ARMS[arm], 32) for arm in ("rtm", "mlp")}, device, 16,
                          losses["rs_imle"], args.steps, args.rounds, compile=True)
        row["rtm_step_cost_over_mlp"] = row["mlp"] / row["rtm"]
        results["cpu_model_32px_batch16_rs_imle_loss_compiled"] = row
        print(f"  (a) the same, torch.compile'd: img/s RTM {row['rtm']:6.1f}, MLP {row['mlp']:6.1f} "
              f"-> an RTM step costs {row['rtm_step_cost_over_mlp']:.2f}x an MLP step")
    return results


def pool_costs(args, device) -> dict:
    """(b) pool generation samples/s per arm and batch size, and one full re-selection."""
    N, results = 3926, {}
    torch.manual_seed(0)
    project = RandomProjection(3 * 32 * 32, 800, seed=0, device=device)
    for arm in ("rtm", "mlp"):
        g = Generator(model_for("cpu", ARMS[arm], 32)).to(device).train()   # as reselect sees it mid-training
        row = {"old_no_grad_batch64": pool_rate(g, project, 1024, 64, inference=False)}
        for batch in (16, 32, 64, 256):
            row[f"batch{batch}"] = pool_rate(g, project, 1024, batch, inference=True)
        start = time.perf_counter()
        compiled = torch.compile(g, dynamic=False)
        pool_rate(compiled, project, 64, 64, inference=True)
        row["compile_s"] = time.perf_counter() - start
        row["compiled_batch64"] = pool_rate(compiled, project, 1024, 64, inference=True)
        row["speedup_compiled_over_old"] = row["compiled_batch64"] / row["old_no_grad_batch64"]
        results[arm] = row
        print(f"  (b) pool generation, {arm}, samples/s: old {row['old_no_grad_batch64']:.1f}; eager batch 16/32/64/256 "
              f"{row['batch16']:.1f} / {row['batch32']:.1f} / {row['batch64']:.1f} / {row['batch256']:.1f}; "
              f"compiled (--compile) batch 64 {row['compiled_batch64']:.1f} ({row['speedup_compiled_over_old']:.2f}x old; "
              f"compiling took {row['compile_s']:.0f} s)")
    g = Generator(model_for("cpu", ARMS["rtm"], 32)).to(device).eval()
    data = project(torch.rand(N, 3, 32, 32, device=device) * 2 - 1)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    sel = reselect(g, data, project, z_dim=g.z_dim, seed=0, round_=0, force_factor=args.force_factor, eps=0.12,
                   latent_noise=0.001, pool_batch=PRESETS["cpu"]["pool_batch"], info=info)
    total = sel.generate_s + sel.search_s
    results["reselect"] = {"N": N, "force_factor": args.force_factor, "pool": sel.pool_size,
                           "generate_s": sel.generate_s, "search_s": sel.search_s, "generate_share": sel.generate_s / total}
    print(f"  (b) re-selection, N={N}, pool {sel.pool_size} (cpu preset RTM, 32x32): generate+embed "
          f"{sel.generate_s:.1f} s, search {sel.search_s:.1f} s -> generation is "
          f"{100 * sel.generate_s / total:.0f}% of {total:.1f} s")
    return results


def experiment_arms(args, device) -> dict:
    """(e) per arm: s/step at its batch, pool samples/s, and the wall time of a 4,000-step run."""
    N, steps_planned, results = 103, 4000, {}
    project = RandomProjection(3 * 32 * 32, 800, seed=0, device=device)
    arms = {"rtm_cpu_preset": dict(PRESETS["cpu"]),
            "rs_imle_preset": {**PRESETS["rs-imle"], "perceptual_size": 32}}
    for arm, preset in arms.items():
        cfg = TrainConfig(**preset)
        config = cfg.model_config(32, 3)
        loss = ImageLoss(cfg.loss_perceptual, cfg.loss_pixel, cfg.perceptual_size).to(device)
        run = step_timer(config, device, cfg.batch_size, loss)
        s_per_step = statistics.median(run(args.steps) for _ in range(args.rounds))
        g = Generator(config).to(device).train()
        samples_per_s = pool_rate(g, project, 256, cfg.pool_batch, inference=True)
        pool = -(-cfg.force_factor * N // cfg.pool_multiple) * cfg.pool_multiple
        rounds = -(-steps_planned // resample_interval(cfg, N))
        minutes = (steps_planned * s_per_step + rounds * pool / samples_per_s) / 60
        results[arm] = {"batch": cfg.batch_size, "s_per_step": s_per_step, "pool_samples_per_s": samples_per_s,
                        "pool": pool, "rounds_in_4000_steps": rounds, "minutes_for_4000_steps": minutes,
                        "parameters": Generator(config).parameter_counts()["total"]}
        print(f"  (e) {arm}: {s_per_step:.2f} s per step of batch {cfg.batch_size}; pool {samples_per_s:.1f} samples/s "
              f"({pool} per round, {rounds} rounds) -> a 4,000-step run takes ~{minutes:.0f} min")
    return results


# Dense bf16 (fp32 on a CPU: unknown, give --peak-tflops) tensor-core peaks from the vendors' data
# sheets, TFLOP/s; the share of peak is reported against this.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}

LOOP_CONFIGS = {   # name -> (preset, images, resolution, batch); the GPU check's most wanted figure first
    "faces_gpu_recipe_32px": ("gpu", 103, 32, None),    # batch and rate from the data: 64 on a GPU, 16 on a CPU
    "32px_batch256": ("gpu", 1024, 32, 256),
    "64px_batch256": ("gpu", 1024, 64, 256),
    "faces_recipe_32px": ("cpu", 103, 32, None),
}


def synthetic_data(folder: Path, images: int, resolution: int) -> str:
    """A prepared dataset of random pictures of that size (the step's cost does not depend on them)."""
    import numpy as np

    from train.data import save_prepared

    pixels = np.random.default_rng(0).integers(0, 256, (images, resolution, resolution, 3), dtype=np.uint8)
    return str(save_prepared(folder, pixels, {"source": "synthetic (bench_train)", "licence": "none"}))


def device_peak(device: torch.device, override: float) -> tuple[float, str]:
    if override > 0:
        return override * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{key} dense bf16"
    return 0.0, "unknown"


def loop_step(name: str, preset: str, images: int, resolution: int, batch: Optional[int], args, device,
              graphed: bool = False) -> dict:
    """(f) for one configuration: one iteration of the trainer's loop (the objective's step,
    the EMA), eager or (graphed) captured once as a CUDA graph and replayed (--cuda-graph)."""
    import tempfile

    from torch.utils.flop_counter import FlopCounterMode

    from bench.counters import HostSyncs, OpCounter
    from train import trainer

    work = Path(tempfile.mkdtemp(prefix="rtm-bench-loop-"))
    data = synthetic_data(work / "data", images, resolution)
    changes = {"batch_size": batch} if batch else {}
    if args.quick:
        preset, changes = "tiny", {}
    cfg = TrainConfig(**{**PRESETS[preset], **changes, "data": data, "out": str(work / "run"), "progress": False,
                         "device": device.type, "compile": args.compile_loop and device.type == "cuda",
                         "perceptual_weights": args.perceptual_weights, "cuda_graph": graphed})
    run = trainer.setup(cfg)
    run.objective.select_latents(run)
    rows = run.per_rank_batch
    idx = torch.arange(rows, device=device) % run.data.shape[0]
    step = trainer.training_step(run)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    step(idx, 1.0, 0.999)                              # the first step: compile and autotuning included
    sync()
    first_s = time.perf_counter() - start
    for _ in range(2):
        step(idx, 1.0, 0.999)
    with FlopCounterMode(display=False) as flops:      # graphed: the capture, which dispatches the step once
        step(idx, 1.0, 0.999)
    with HostSyncs() as syncs, OpCounter() as ops:     # graphed: a replay, which dispatches nothing
        step(idx, 1.0, 0.999)
    steps = 3 if args.quick else args.loop_steps
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step(idx, 1.0, 0.999)
    sync()
    seconds = (time.perf_counter() - start) / steps
    flop_per_image = flops.get_total_flops() / rows
    peak, peak_name = device_peak(device, args.peak_tflops)
    achieved = flop_per_image * rows / seconds
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device)
    else:
        import resource
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    row = {"preset": preset, "resolution": resolution, "batch": rows, "images_per_s": rows / seconds,
           "first_step_s": first_s, "flop_per_image": flop_per_image, "achieved_tflops": achieved / 1e12,
           "peak_share": achieved / peak if peak else None, "peak": peak_name, "host_syncs_per_step": syncs.total,
           "operators_per_step": ops.total, "peak_memory_mb": memory / 2**20, "compiled": cfg.compile,
           "cuda_graph": graphed}
    share = f"{100 * row['peak_share']:.2f} % of {peak_name} peak" if peak else "peak unknown (--peak-tflops)"
    print(f"  (f) {name}: {row['images_per_s']:,.0f} img/s at batch {rows} ({resolution}px); first step "
          f"{first_s:.1f} s; {flop_per_image / 1e9:.2f} GFLOP/image -> {row['achieved_tflops']:.3f} TFLOP/s, {share}; "
          f"{syncs.total} host syncs and {ops.total} operators dispatched per step; peak memory "
          f"{row['peak_memory_mb']:,.0f} MB")
    return row


def loop_costs(args, device, results: dict) -> dict:
    """(f) for each configuration; the results file is written after each one, so a run stopped
    by a time limit keeps the configurations it finished. --cuda-graph (on CUDA) then times the
    first configuration again with its step captured as a CUDA graph: the ratio of the two is
    what the launches cost."""
    configs = {"tiny": LOOP_CONFIGS["faces_recipe_32px"]} if args.quick else LOOP_CONFIGS
    done = results.setdefault("loop", {})
    for name, config in configs.items():
        done[name] = loop_step(name, *config, args, device)
        write_results(results, args.out)
    if args.cuda_graph and device.type == "cuda":
        name, config = next(iter(configs.items()))
        done[name + "_cuda_graph"] = row = loop_step(name + " (CUDA graph)", *config, args, device, graphed=True)
        row["speedup_over_eager"] = row["images_per_s"] / done[name]["images_per_s"]
        print(f"  (f) the CUDA graph: {row['speedup_over_eager']:.2f}x the eager step's img/s")
        write_results(results, args.out)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="a,b,c,e,f", help="which of (a), (b), (c), (e), (f) to run, e.g. 'f' "
                        "((d) in docs/BENCHMARKS.md was measured with whole training runs)")
    parser.add_argument("--force-factor", type=int, default=4, help="pool size / N for the full re-selection in (b)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per arm and round in (a), (c)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds the arms take turns in (a), (c); the median counts")
    parser.add_argument("--compile-step", action="store_true",
                        help="also time a torch.compile'd optimizer step (RTM and MLP, cpu preset; minutes of compiling)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--loop-steps", type=int, default=20, help="timed steps per configuration in (f)")
    parser.add_argument("--compile-loop", action="store_true", help="(f) with --compile, as the gpu preset runs (CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the device's peak, for (f)'s share of it")
    parser.add_argument("--quick", action="store_true", help="(f) on a tiny model for a few steps: a smoke run")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="(f), CUDA: also time the first configuration with its step captured as a CUDA graph")
    parser.add_argument("--perceptual-weights", choices=("imagenet", "random"), default="imagenet",
                        help="(f): the perceptual network's weights; random has the same cost (where they cannot be had)")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    sections = set(args.sections.split(","))
    print(f"training benchmarks on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict = {"device": str(device), "threads": torch.get_num_threads()}
    if "a" in sections:
        results["step"] = step_costs(args, device)
    if "b" in sections:
        results["pool"] = pool_costs(args, device)
    if "c" in sections:
        results["adversarial"] = adversarial_rates(args.steps, args.rounds)
    if "e" in sections:
        results["experiment_arms"] = experiment_arms(args, device)
    if "f" in sections:
        loop_costs(args, device, results)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
