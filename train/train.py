"""RS-IMLE training of an RTM (or one-pass MLP) generator.

Prepare data once, then train:

    python -m train.data noto-emoji --resolution 32 --out data/noto-emoji-32
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-rtm               # CPU, <= 60 min
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-mlp --mapper.kind mlp  # the baseline
    python -m train.train --preset gpu --data data/noto-emoji-64 --out runs/emoji64-rtm             # one GPU
    torchrun --nproc_per_node=8 -m train.train --preset gpu --data data/noto-emoji-64 --out runs/x  # 8 GPUs
    python -m train.train --preset cpu --data data/noto-emoji-32 --out runs/emoji-rtm --resume      # continue

The loop, top to bottom: every `resample_every` epochs, re-select each image's latent
(RS-IMLE, train/imle.py); then train on (image, latent) pairs with a perceptual distance
+ pixel L2 (train/losses.py; weights 1.0 / 1.0 in the cpu and gpu presets, pixel L2 alone
in the tiny preset), AdamW,
warmup, gradient clipping and an EMA of the weights. The run folder gets metrics.jsonl,
samples/ (for fixed seeds, the image after steps 1..H) and checkpoint/ (the EMA weights in
the rtm_core format, plus train_state.pt with everything --resume needs).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from rtm_core import Generator, refinement_grid, save_checkpoint, to_pil
from rtm_core.checkpoint import read_config

from . import distributed
from .config import TrainConfig, parse_args
from .data import load_prepared
from .imle import RandomProjection, derived_seed, embed_in_batches, nearest_neighbour_distances, quantiles, reselect
from .losses import ImageLoss

TRAIN_STATE_FILE = "train_state.pt"


class TrainingDiverged(RuntimeError):
    """The loss or the gradients stopped being finite; nothing was saved after that."""


@torch.no_grad()
def weight_change(model: Generator, initial: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative distance of each part's weights from their initialisation: ||θ - θ0|| / ||θ0||.

    A comparison is only as good as its weakest arm: an arm whose mapper stays at ~0 % has
    not trained (StyleGAN2's lr x 0.01 mapper under IMLE moved 0.17 % in 8,000 steps).
    """
    change = {}
    for part in ("mapping", "synthesis"):
        params = [(p, initial[n]) for n, p in model.named_parameters() if n.startswith(part + ".")]
        delta = sum((p.float() - p0.float()).square().sum() for p, p0 in params)
        norm = sum(p0.float().square().sum() for _, p0 in params)
        change[part] = float((delta / norm.clamp(min=1e-30)).sqrt())
    return change


def learning_rate(cfg: TrainConfig, step: int) -> float:
    # Linear warmup, then constant: independent of max_steps, so a run extended with
    # --resume --max-steps follows the same schedule as one planned that long.
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def epoch_order(seed: int, epoch: int, n: int, info: distributed.DistInfo) -> torch.Tensor:
    """This rank's share of a permutation that depends only on (seed, epoch)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, epoch, 7)))
    per_rank = n // info.world_size
    return perm[info.rank::info.world_size][:per_rank]


def save_refinement_grid(ema: Generator, path: Path, num_seeds: int) -> None:
    """Rows: fixed seeds 0..n-1. Columns: the image after steps 1, 2, ..., H."""
    grid = refinement_grid(ema, range(num_seeds), range(1, ema.num_steps + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(grid).save(path)


def save_all(folder: Path, model: Generator, ema: Generator, opt: torch.optim.Optimizer, state: dict,
             meta: dict) -> None:
    """The EMA checkpoint and the training state, replaced together in one atomic step: a kill
    at any moment leaves the previous complete pair or the new one."""
    payload = {**state, "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
               "rng_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        payload["rng_cuda"] = torch.cuda.get_rng_state_all()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    save_checkpoint(ema, folder, meta=meta, extra_files={TRAIN_STATE_FILE: buffer.getvalue()})


def train(cfg: TrainConfig) -> Path:
    info = distributed.setup(cfg.device)
    device = info.device
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoint"
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world_size}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # --- data: uint8 on the device, converted per batch ---------------------------------
    dataset = load_prepared(cfg.data)
    data = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).contiguous().to(device)  # (N, C, R, R) uint8
    N = data.shape[0]
    per_rank_batch = cfg.batch_size // info.world_size
    steps_per_epoch = (N // info.world_size) // per_rank_batch
    if steps_per_epoch < 1:
        raise ValueError(f"the dataset has {N} images, fewer than one batch of {cfg.batch_size}; lower --batch-size")

    def as_float(images: torch.Tensor) -> torch.Tensor:
        return images.float() / 127.5 - 1.0

    # --- model, EMA, optimizer ------------------------------------------------------------
    model_config = cfg.model_config(dataset.resolution, dataset.channels)
    torch.manual_seed(cfg.seed)
    model = Generator(model_config).to(device).train()
    # The initialisation depends only on the seed, so a resumed run has the same reference.
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW([{"params": model.mapping.parameters(), "lr_scale": 1.0},
                             {"params": model.synthesis.parameters(), "lr_scale": cfg.synthesis_lr_scale}],
                            lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    state = {"step": 0, "latents": None, "latents_epoch": -1, "wall_time_s": 0.0}

    if cfg.resume:
        if not (ckpt_dir / TRAIN_STATE_FILE).is_file():
            raise FileNotFoundError(f"--resume: no {TRAIN_STATE_FILE} in {ckpt_dir}; start without --resume")
        if read_config(ckpt_dir) != model_config:
            raise ValueError(f"--resume: {ckpt_dir} holds a different model configuration than these settings; "
                             f"use the flags of the original run")
        saved = torch.load(ckpt_dir / TRAIN_STATE_FILE, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng_cpu"])
        if "rng_cuda" in saved and device.type == "cuda":
            torch.cuda.set_rng_state_all(saved["rng_cuda"])
        state = {k: saved[k] for k in state}
    train_model = DistributedDataParallel(model) if info.enabled else model
    pool_model = model
    if cfg.compile:
        # Two graphs: the train step and the pool's generation (no grad). On this project's CPU
        # each takes about a minute to compile; docs/BENCHMARKS.md has what they save.
        train_model, pool_model = torch.compile(train_model), torch.compile(model)

    project = RandomProjection(data[0].numel(), cfg.search_dim, seed=cfg.seed, device=device)
    data_features = embed_in_batches(lambda x: project(as_float(x)), data, 1024)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext())
    image_loss = ImageLoss(cfg.loss_perceptual, cfg.loss_pixel, cfg.perceptual_size).to(device)
    data_nn = nearest_neighbour_distances(data_features)
    eps = cfg.eps_nn_fraction * float(data_nn.median()) if cfg.eps_nn_fraction > 0 else cfg.eps

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        params = model.parameter_counts()
        print(f"{model_config.mapper.kind.upper()} generator: {params['mapping'] / 1e6:.2f} M mapper + "
              f"{params['synthesis'] / 1e6:.2f} M decoder parameters; {N} images of "
              f"{dataset.resolution}x{dataset.resolution}; {steps_per_epoch} steps per epoch on {device} "
              f"x {info.world_size}", file=sys.stderr)
    log_file = (out / "metrics.jsonl").open("a") if info.is_main else None

    def log(record: dict) -> None:
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    # The search space's own scale, so that eps can be read against it (docs/EXPERIMENTS.md).
    log({"event": "search_space", "eps": eps, "data_nn_distance": quantiles(data_nn)})

    def checkpoint(step: int) -> None:
        if info.is_main:
            meta = {"data": cfg.data, "data_source": dataset.manifest.get("source"), "num_images": N,
                    "step": step, "epoch": step / steps_per_epoch, "images_seen": step * cfg.batch_size,
                    "wall_time_s": state["wall_time_s"], "weight_change": weight_change(model, initial),
                    "train_config": dataclasses.asdict(cfg)}
            save_all(ckpt_dir, model, ema, opt, {**state, "step": step}, meta)
        distributed.barrier(info)

    step = state["step"]
    latents = state["latents"].to(device) if state["latents"] is not None else None
    start_time, window_start, window_images = time.perf_counter(), time.perf_counter(), 0
    wall_before = state["wall_time_s"]
    bar = None
    if info.is_main and cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True)
    order = None

    while step < cfg.max_steps:
        epoch, pos = divmod(step, steps_per_epoch)

        # --- RS-IMLE re-selection at the start of every resample_every-th epoch ----------
        if latents is None or (pos == 0 and epoch % cfg.resample_every == 0 and state["latents_epoch"] != epoch):
            selection = reselect(pool_model, data_features, project, z_dim=model.z_dim, seed=cfg.seed,
                                 round_=epoch, force_factor=cfg.force_factor, eps=eps,
                                 latent_noise=cfg.latent_noise, pool_batch=cfg.pool_batch, info=info)
            latents = selection.latents.to(device)
            state["latents"], state["latents_epoch"] = selection.latents, epoch
            log({"event": "reselect", "step": step, "epoch": epoch, "pool": selection.pool_size,
                 "eps": eps, "rejected": selection.rejected, "unmatched": int((selection.index < 0).sum()),
                 "mean_distance": float(selection.distance[selection.index >= 0].mean()) if (selection.index >= 0).any() else None,
                 "matched_distance": quantiles(selection.distance[selection.index >= 0]),
                 "sample_to_data_distance": selection.sample_to_data,
                 "generate_s": selection.generate_s, "search_s": selection.search_s})
            window_start = time.perf_counter()  # images/s should measure training, not selection
        if order is None or pos == 0:
            order = epoch_order(cfg.seed, epoch, N, info).to(device)

        # --- one optimizer step ---------------------------------------------------------------
        idx = order[pos * per_rank_batch:(pos + 1) * per_rank_batch]
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
        with autocast:
            fake = train_model(latents[idx])
        real = as_float(data[idx])
        losses = image_loss(fake, real)
        loss = losses["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf"))
        loss_value = distributed.all_reduce_mean(loss.item(), info)
        if not math.isfinite(loss_value) or not torch.isfinite(grad_norm):
            if bar:
                bar.close()
            raise TrainingDiverged(
                f"training diverged at step {step}: loss {loss_value}, gradient norm {grad_norm.item()}. "
                f"Nothing was saved after the last good checkpoint ({ckpt_dir}, if one was written). "
                f"Lower --lr or raise --warmup-steps, then continue with --resume.")
        opt.step()
        update_ema(ema, model, cfg.ema_decay)
        step += 1
        window_images += cfg.batch_size
        state["wall_time_s"] = wall_before + time.perf_counter() - start_time

        if bar:
            bar.update(1)
        if step % cfg.log_every == 0:
            rate = window_images / (time.perf_counter() - window_start)
            window_start, window_images = time.perf_counter(), 0
            log({"step": step, "epoch": step / steps_per_epoch, "loss": loss_value, "lr": learning_rate(cfg, step - 1),
                 **{k: v.item() for k, v in losses.items() if k != "loss"},
                 "grad_norm": grad_norm.item(), "images_per_s": rate, "wall_time_s": state["wall_time_s"],
                 "weight_change": weight_change(model, initial)})
            if bar:
                bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{rate:.0f}")
        out_of_time = cfg.max_minutes > 0 and time.perf_counter() - start_time > 60 * cfg.max_minutes
        last = step == cfg.max_steps or out_of_time
        if info.is_main and (last or (cfg.sample_every and step % cfg.sample_every == 0)):
            save_refinement_grid(ema, out / "samples" / f"step_{step:07d}.png", cfg.preview_seeds)
        if last or step % cfg.checkpoint_every == 0:
            checkpoint(step)
        if out_of_time:
            break

    if bar:
        bar.close()
    if log_file:
        log_file.close()
    distributed.cleanup()
    return ckpt_dir


def main(argv: Optional[list[str]] = None) -> None:
    cfg = parse_args(argv)
    if not cfg.data:
        raise SystemExit("error: --data is required (a folder made by `python -m train.data ...`)")
    try:
        folder = train(cfg)
    except (TrainingDiverged, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"checkpoint: {folder}")


if __name__ == "__main__":
    main()
