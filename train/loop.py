"""The RS-IMLE training loop (the command line is train/train.py; the scaffolding it shares
with the adversarial loop is train/run.py).

Read top to bottom: `setup` builds the run (data, model, EMA, optimizer, search space,
loss; the last checkpoint's state with --resume), `select_latents` is one RS-IMLE round,
`train_step` one optimizer step, `save_state` one atomic checkpoint, and `train` the loop
that calls them.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from rtm_core import Generator

from . import distributed
from .config import TrainConfig
from .imle import RandomProjection, Selection, embed_in_batches, nearest_neighbour_distances, quantiles, reselect
from .init_from import Parent
from .losses import ImageLoss
from .run import (BatchOrder, Cadence, claim_run_folder, DiversityProbe, RunFolder, as_float, budget_meta, build_generator,
                  check_finite, ema_decay, images_before, learning_rates_on_device, load_data,
                  open_run_folder, read_metrics, read_train_state, restore_rng_states, rng_states, save_all,
                  skip_if_not_finite, update_ema, weight_change)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    # Linear warmup, then constant: independent of max_steps, so a run extended with
    # --resume --max-steps follows the same schedule as one planned that long. "cosine"
    # decays to lr_final_scale x lr at max_steps (and stays there), for a stage meant to end.
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "constant":
        return cfg.lr * warmup
    progress = min(1.0, max(0, step + 1 - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * warmup * (cfg.lr_final_scale + (1 - cfg.lr_final_scale) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Run(RunFolder):
    """Everything a training run holds between two steps. `step`, `latents`, `latents_step`
    and `wall_time_s` are the training state that --resume restores beside the weights."""

    cfg: TrainConfig
    info: distributed.DistInfo
    data: torch.Tensor                  # (N, C, R, R) uint8 on the device, converted per batch
    data_features: torch.Tensor         # (N, search_dim): the images in RS-IMLE's search space
    meta: dict                          # what the data was, for meta.json
    model: Generator
    ema: Generator
    opt: torch.optim.Optimizer
    forward_loss: torch.nn.Module       # GeneratorLoss: model (maybe in DDP) and loss, one compiled region with --compile
    pool_model: torch.nn.Module         # model, maybe compiled, for the no-grad pool
    initial: dict[str, torch.Tensor]    # the initial weights (--init-from: the parent's), for weight_change
    parent: Optional[Parent]            # --init-from's checkpoint: its lineage goes into meta.json
    project: RandomProjection
    eps: float
    resample_steps: int                 # optimizer steps between two RS-IMLE rounds (resample_interval)
    per_rank_batch: int
    step: int = 0
    latents: Optional[torch.Tensor] = None
    latents_step: int = -1              # the step whose round selected the latents
    first_skipped: Optional[torch.Tensor] = None   # 0-d on the device: the first non-finite step skipped, or -1
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0     # this process's CPU seconds: the budget, whatever shared the machine or paused the run
    diversity: dict = field(default_factory=dict)   # DiversityProbe at the run's first and latest log
    log_file: Optional[IO[str]] = field(default=None, repr=False)

    STATE_KEYS = ("step", "latents", "latents_step", "wall_time_s", "cpu_time_s", "diversity")


def setup(cfg: TrainConfig) -> Run:
    """Data, model, EMA, optimizer, search space and loss; the state of the last checkpoint
    if cfg.resume."""
    claim_run_folder(cfg, distributed.rank_from_environment())   # before anything is written, before the ranks meet
    info = distributed.setup(cfg.device)
    device = info.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True   # fixed shapes every step: let cuDNN pick its fastest kernels once

    cfg, dataset, data, per_rank_batch = load_data(cfg, info)   # cfg: with what the data decides
    N = data.shape[0]

    model_config, model, ema, parent = build_generator(cfg, dataset, device, info)
    # The initialisation depends only on the seed (or the parent), so a resumed run has the same reference.
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    # Fused AdamW (one kernel for every tensor on a GPU, and on a CPU too), its learning rates
    # 0-d tensors on the device so that a step never waits for the host (train_step).
    opt = torch.optim.AdamW([{"params": model.mapping.parameters(), "lr_scale": cfg.mapping_lr_scale,
                              "lr": torch.tensor(cfg.lr, device=device)},
                             {"params": model.synthesis.parameters(), "lr_scale": cfg.synthesis_lr_scale,
                              "lr": torch.tensor(cfg.lr, device=device)}],
                            lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
                            fused=True)
    # One device per process (device_ids), and no buffer broadcast before every forward: the
    # generator's buffers (the fixed initial states, the noise scales' constants) never change.
    train_model = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                           broadcast_buffers=False) if info.enabled else model)
    forward_loss = GeneratorLoss(train_model, ImageLoss(cfg.loss_perceptual, cfg.loss_pixel, cfg.perceptual_size),
                                 bf16=cfg.amp and device.type == "cuda").to(device)
    pool_model = model
    if cfg.compile:
        # Two graphs: the generator with its loss (one region: the perceptual network's kernels
        # fuse with the generator's) and the pool's generation (no grad). On this project's CPU
        # each takes about a minute to compile; docs/BENCHMARKS.md has what they save.
        forward_loss, pool_model = torch.compile(forward_loss), torch.compile(model)

    project = RandomProjection(data[0].numel(), cfg.search_dim, seed=cfg.seed, device=device)
    data_features = embed_in_batches(lambda x: project(as_float(x)), data, 1024)
    data_nn = nearest_neighbour_distances(data_features)
    eps = cfg.eps_nn_fraction * float(data_nn.median()) if cfg.eps_nn_fraction > 0 else cfg.eps
    run = Run(cfg=cfg, info=info, data=data, data_features=data_features, model=model, ema=ema, opt=opt,
              meta={"data": cfg.data, "data_source": dataset.manifest.get("source"), "num_images": N},
              forward_loss=forward_loss, pool_model=pool_model, initial=initial, parent=parent, project=project,
              eps=eps, resample_steps=resample_interval(cfg, N), per_rank_batch=per_rank_batch)
    if cfg.resume:
        load_state(run, model_config)
    learning_rates_on_device(opt, device)
    run.first_skipped = torch.tensor(-1, device=device)
    if info.is_main:
        run.log_file = open_run_folder(cfg)
        params = model.parameter_counts()
        print(f"{model_config.mapper.kind.upper()} generator: {params['mapping'] / 1e6:.2f} M mapper + "
              f"{params['synthesis'] / 1e6:.2f} M decoder parameters; {N} images of "
              f"{dataset.resolution}x{dataset.resolution}; batch {cfg.batch_size}, re-selection every "
              f"{run.resample_steps} steps, on {device} x {info.world_size}", file=sys.stderr)
    # The search space's own scale, so that eps can be read against it (docs/EXPERIMENTS.md).
    run.log({"event": "search_space", "eps": eps, "data_nn_distance": quantiles(data_nn)})
    return run


def load_state(run: Run, model_config) -> None:
    """--resume: the weights, EMA, optimizer, random state and training state of the last checkpoint."""
    saved = read_train_state(run, model_config)
    run.model.load_state_dict(saved["model"])
    run.ema.load_state_dict(saved["ema"])
    run.opt.load_state_dict(saved["optimizer"])    # its state follows the parameters' device
    restore_rng_states(saved, run.info)
    for key in Run.STATE_KEYS:
        if key in saved:   # "diversity" came later: older states lack it
            setattr(run, key, saved[key])
    if run.latents is not None:
        run.latents = run.latents.to(run.info.device)


def save_state(run: Run) -> None:
    """The EMA checkpoint and the training state, replaced together in one atomic step: a kill
    at any moment leaves the previous complete pair or the new one."""
    rng = rng_states(run.info)                      # every rank takes part
    if run.info.is_main:
        state = {key: getattr(run, key) for key in Run.STATE_KEYS} | rng
        state["latents"] = run.latents.cpu() if run.latents is not None else None
        meta = {**run.meta, **budget_meta(run), "seed_diversity": run.diversity,
                "weight_change": weight_change(run.model, run.initial), "train_config": dataclasses.asdict(run.cfg)}
        save_all(run.ckpt_dir, run.model, run.ema, run.opt, state, meta)
    distributed.barrier(run.info)


def resample_interval(cfg: TrainConfig, num_images: int) -> int:
    """Optimizer steps between two RS-IMLE rounds: every `resample_every` epochs counted in images
    (the same images between rounds at any batch size), but at least `resample_min_steps`, so
    that a large batch on few images still takes some steps towards its targets before they move."""
    return max(1, cfg.resample_min_steps, round(cfg.resample_every * num_images / cfg.batch_size))


def select_latents(run: Run) -> Selection:
    """One RS-IMLE round: every image gets the nearest surviving latent of a fresh pool."""
    cfg = run.cfg
    selection = reselect(run.pool_model, run.data_features, run.project, z_dim=run.model.z_dim, seed=cfg.seed,
                         round_=run.step // run.resample_steps, force_factor=cfg.force_factor, eps=run.eps,
                         latent_noise=cfg.latent_noise, pool_batch=cfg.pool_batch, info=run.info,
                         pool_multiple=cfg.pool_multiple, knn_ignore=cfg.knn_ignore if cfg.rejection == "knn" else 0)
    run.latents, run.latents_step = selection.latents.to(run.info.device), run.step
    matched = selection.index >= 0
    run.log({"event": "reselect", "step": run.step, "epoch": run.step * cfg.batch_size / run.data.shape[0],
             "pool": selection.pool_size, "eps": run.eps,
             "rejected": selection.rejected, "unmatched": int((~matched).sum()),
             "mean_distance": float(selection.distance[matched].mean()) if matched.any() else None,
             "matched_distance": quantiles(selection.distance[matched]),
             "sample_to_data_distance": selection.sample_to_data,
             "generate_s": selection.generate_s, "search_s": selection.search_s})
    return selection


class GeneratorLoss(torch.nn.Module):
    """The generator's images for the latents (bf16 autocast on CUDA) and their loss against the
    real images: the part of a step that --compile turns into one graph."""

    def __init__(self, generator: torch.nn.Module, image_loss: ImageLoss, bf16: bool):
        super().__init__()
        self.generator, self.image_loss, self.bf16 = generator, image_loss, bf16

    def forward(self, latents: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        # The context made here, not kept on the module: torch.compile traces it into the graph.
        with torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext():
            fake = self.generator(latents)
        return self.image_loss(fake, real)


def train_step(run: Run, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimizer step on images `idx` and their selected latents, with no host sync: the
    losses, gradient norm and finiteness stay on the device and are read at log time
    (`read_metrics`). A step whose loss or gradients are not finite is skipped on the device
    (`skip_if_not_finite`: the weights do not move) and `check_finite` stops the run at the next
    log or checkpoint."""
    cfg = run.cfg
    lr = learning_rate(cfg, run.step)
    losses = run.forward_loss(run.latents[idx], as_float(run.data[idx]))
    run.opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip or float("inf"), foreach=True)
    finite = torch.isfinite(losses["loss"].detach()) & torch.isfinite(grad_norm)
    skip_if_not_finite(run, run.opt, run.model, finite, [lr * group["lr_scale"] for group in run.opt.param_groups])
    run.opt.step()
    update_ema(run.ema, run.model, ema_decay(cfg, run.step, images_before(run)))
    return {**{k: v.detach() for k, v in losses.items()}, "grad_norm": grad_norm.detach()}


def status_line(record: dict, max_steps: int) -> str:
    """One greppable line per interval: `step 250/1500 | loss 0.4121 | ... | 38.1 img/s | 6.2 min`."""
    parts = [f"step {record['step']}/{max_steps}", f"loss {record['loss']:.4f}"]
    parts += [f"{k} {record[k]:.4f}" for k in ("pixel", "perceptual") if k in record]
    if "seed_diversity" in record:
        ema = record["seed_diversity"]["ema"]
        parts.append(f"distinct {ema['distinct_nearest']}/{DiversityProbe.SEEDS} w-spread {ema['w_spread']:.2f}")
    parts += [f"{record['images_per_s']:.1f} img/s", f"{record['wall_time_s'] / 60:.1f} min"]
    return " | ".join(parts)


def evaluate_now(run: Run, evaluation, clock: "Cadence") -> None:
    """--eval-every: the EMA model at its trained H against the training set, one metrics.jsonl line."""
    start, result = time.perf_counter(), None
    with clock.survive("the evaluation"), clock.aside("evaluation", every=run.cfg.eval_every):
        result = evaluation(run.ema)
    if result is None:
        return
    record = {"event": "eval", "step": run.step, "images_seen": run.step * run.cfg.batch_size,
              "wall_time_s": run.wall_time_s, "eval_s": time.perf_counter() - start, **result}
    run.log(record)
    clock.status(f"eval at step {run.step}: precision {result['precision']:.3f} | recall {result['recall']:.3f} | "
                 f"coverage {result['coverage']:.3f} | distinct nearest {result['distinct_nearest']}/"
                 f"{result['diversity_seeds']} | {record['eval_s']:.0f} s")


def train(cfg: TrainConfig) -> Path:
    run = setup(cfg)
    cfg = run.cfg   # with the settings the data decided (train/recipe.py)
    N = run.data.shape[0]
    clock, order = Cadence(cfg, run), BatchOrder(cfg.seed, N, cfg.batch_size, run.info)
    evaluation, probe = None, DiversityProbe(run.data, run.model.z_dim) if run.info.is_main else None
    if probe and "first" not in run.diversity:   # where this run starts
        with clock.survive("the seed-diversity probe"):
            run.diversity["first"] = {"step": run.step, **probe.both(run)}
            run.log({"event": "seed_diversity", "step": run.step, **run.diversity["first"]})
    if cfg.eval_every and run.info.is_main:
        from .evaluation import TrainingEvaluation
        evaluation = TrainingEvaluation(cfg.data, cfg.eval_samples, device=run.info.device)
        if run.parent and run.step == 0:   # where this stage starts: the first point of its curve
            evaluate_now(run, evaluation, clock)
    try:
        while run.step < cfg.max_steps:
            if run.latents is None or (run.step % run.resample_steps == 0 and run.latents_step != run.step):
                with clock.aside("selection", every=run.resample_steps):
                    select_latents(run)
            metrics = train_step(run, order(run.step))
            run.step += 1
            clock.tick(run)
            if run.step % cfg.log_every == 0:
                check_finite(run)
                record = {"step": run.step, "epoch": run.step * cfg.batch_size / N, **read_metrics(run, metrics),
                          "lr": learning_rate(cfg, run.step - 1), "images_per_s": clock.images_per_s(),
                          "wall_time_s": run.wall_time_s, "weight_change": weight_change(run.model, run.initial)}
                if probe:
                    with clock.survive("the seed-diversity probe"), clock.aside("probe", every=cfg.log_every):
                        record["seed_diversity"] = probe.both(run)
                        run.diversity["last"] = {"step": run.step, **record["seed_diversity"]}
                run.log(record)
                clock.status(f"{status_line(record, cfg.max_steps)} | {clock.eta()}")
            out_of_time = clock.end_of_step(run.step, run.ema, run.out, lambda: (check_finite(run), save_state(run)))
            if evaluation and (run.step % cfg.eval_every == 0 or out_of_time or run.step == cfg.max_steps):
                evaluate_now(run, evaluation, clock)
            if out_of_time:
                break
    finally:
        clock.close(run.log_file)
    distributed.cleanup()
    return run.ckpt_dir

