"""The RS-IMLE training loop (the command line is train/train.py).

Read top to bottom: `setup` builds the run (data, model, EMA, optimizer, search space,
loss; the last checkpoint's state with --resume), `select_latents` is one RS-IMLE round,
`train_step` one optimizer step, `save_state` one atomic checkpoint, and `train` the loop
that calls them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from rtm_core import Generator, refinement_grid, save_checkpoint, seeds_to_z, to_pil
from rtm_core.checkpoint import read_config
from rtm_core.metrics import seed_diversity, w_spread

from . import distributed
from .config import TrainConfig, command_line
from .data import load_prepared
from .imle import (RandomProjection, Selection, embed_in_batches, nearest_neighbour_distances, quantiles,
                   reselect, stream)
from .init_from import TRAIN_STATE_FILE, Parent, parent_of
from .losses import ImageLoss


class TrainingDiverged(RuntimeError):
    """The loss or the gradients stopped being finite; nothing was saved after that."""


@torch.no_grad()
def relative_change(pairs) -> float:
    """||θ - θ0|| / ||θ0|| over (current, initial) parameter pairs."""
    pairs = list(pairs)
    delta = sum((p.float() - p0.float()).square().sum() for p, p0 in pairs)
    norm = sum(p0.float().square().sum() for _, p0 in pairs)
    return float((delta / norm.clamp(min=1e-30)).sqrt())


def weight_change(model: Generator, initial: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative distance of each part's weights from their initialisation: ||θ - θ0|| / ||θ0||.

    A comparison is only as good as its weakest arm: an arm whose mapper stays at ~0 % has
    not trained (StyleGAN2's lr x 0.01 mapper under IMLE moved 0.17 % in 8,000 steps).
    """
    return {part: relative_change((p, initial[n]) for n, p in model.named_parameters() if n.startswith(part + "."))
            for part in ("mapping", "synthesis")}


def learning_rate(cfg: TrainConfig, step: int) -> float:
    # Linear warmup, then constant: independent of max_steps, so a run extended with
    # --resume --max-steps follows the same schedule as one planned that long. "cosine"
    # decays to lr_final_scale x lr at max_steps (and stays there), for a stage meant to end.
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "constant":
        return cfg.lr * warmup
    progress = min(1.0, max(0, step + 1 - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * warmup * (cfg.lr_final_scale + (1 - cfg.lr_final_scale) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay(cfg: TrainConfig, step: int, images_before: int = 0) -> float:
    """The EMA's decay at `step`: cfg.ema_decay, or with cfg.ema_rampup > 0 StyleGAN2-ADA's
    ramp-up: the half-life (in images) of that decay, capped at ema_rampup x the images seen
    (images_before: those of the stages an --init-from run continues)."""
    if cfg.ema_rampup <= 0 or cfg.ema_decay == 0:
        return cfg.ema_decay
    half_life = cfg.batch_size * math.log(0.5) / math.log(cfg.ema_decay)
    half_life = min(half_life, cfg.ema_rampup * (images_before + (step + 1) * cfg.batch_size))
    return 0.5 ** (cfg.batch_size / max(half_life, 1e-8))


def images_before(run) -> int:
    """Images seen by the stages before this one (--init-from), for the EMA ramp-up."""
    return sum(stage.get("images_seen") or 0 for stage in run.parent.lineage) if run.parent else 0


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class DiversityProbe:
    """Seed diversity, logged at every interval for the model and its EMA: the seed spread of w
    and the distinct nearest training images (pixel RMS) of seeds 0..99's final frames. A
    collapsed arm shows here within a few hundred steps, long before any evaluation."""

    SEEDS = 100

    def __init__(self, data: torch.Tensor, z_dim: int):
        self.data = data.permute(0, 2, 3, 1).cpu().numpy()        # (N, R, R, C) uint8, as seed_diversity reads it
        self.z = seeds_to_z(range(self.SEEDS), z_dim).to(data.device)

    @torch.no_grad()
    def __call__(self, generator: Generator) -> dict:
        w = generator.map(self.z)
        images = torch.cat([generator.synthesis(chunk) for chunk in w.split(25)])
        return {"w_spread": w_spread(w), "distinct_nearest": seed_diversity(images.cpu(), self.data)["distinct_nearest"]}

    def both(self, run: "Run") -> dict:
        return {"model": self(run.model), "ema": self(run.ema)}


def epoch_order(seed: int, epoch: int, n: int, info: distributed.DistInfo) -> torch.Tensor:
    """This rank's share of a permutation that depends only on (seed, epoch)."""
    perm = torch.randperm(n, generator=stream(seed, "data-order", epoch))
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


class RunFolder:
    """What every run record has: where the run writes, and its metrics.jsonl (rank 0 only)."""

    cfg: TrainConfig
    log_file: Optional[IO[str]]

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoint"

    def log(self, record: dict) -> None:
        if self.log_file:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()


@dataclass
class Run(RunFolder):
    """Everything a training run holds between two steps. `step`, `latents`, `latents_epoch`
    and `wall_time_s` are the training state that --resume restores beside the weights."""

    cfg: TrainConfig
    info: distributed.DistInfo
    data: torch.Tensor                  # (N, C, R, R) uint8 on the device, converted per batch
    data_features: torch.Tensor         # (N, search_dim): the images in RS-IMLE's search space
    meta: dict                          # what the data was, for meta.json
    model: Generator
    ema: Generator
    opt: torch.optim.Optimizer
    train_model: torch.nn.Module        # model, maybe wrapped in DDP and/or compiled
    pool_model: torch.nn.Module         # model, maybe compiled, for the no-grad pool
    initial: dict[str, torch.Tensor]    # the initial weights (--init-from: the parent's), for weight_change
    parent: Optional[Parent]            # --init-from's checkpoint: its lineage goes into meta.json
    project: RandomProjection
    image_loss: ImageLoss
    autocast: Any
    eps: float
    steps_per_epoch: int
    per_rank_batch: int
    step: int = 0
    latents: Optional[torch.Tensor] = None
    latents_epoch: int = -1
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0     # this process's CPU seconds: the budget, whatever shared the machine or paused the run
    diversity: dict = field(default_factory=dict)   # DiversityProbe at the run's first and latest log
    log_file: Optional[IO[str]] = field(default=None, repr=False)

    STATE_KEYS = ("step", "latents", "latents_epoch", "wall_time_s", "cpu_time_s", "diversity")


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def load_data(cfg: TrainConfig, info: distributed.DistInfo):
    """The prepared dataset, as (N, C, R, R) uint8 on the device (converted per batch), with
    this rank's batch size and the steps of one epoch."""
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world_size}")
    dataset = load_prepared(cfg.data)
    data = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).contiguous().to(info.device)
    N, per_rank_batch = data.shape[0], cfg.batch_size // info.world_size
    steps_per_epoch = (N // info.world_size) // per_rank_batch
    if steps_per_epoch < 1:
        raise ValueError(f"the dataset has {N} images, fewer than one batch of {cfg.batch_size}; lower --batch-size")
    return dataset, data, per_rank_batch, steps_per_epoch


def open_run_folder(cfg: TrainConfig) -> IO[str]:
    """Rank 0: the run folder with its train_config.json; returns metrics.jsonl, open for appending."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return (out / "metrics.jsonl").open("a")


def read_train_state(ckpt_dir: Path, model_config, device: torch.device) -> dict:
    """--resume: train_state.pt of the last checkpoint, refused if the model settings differ."""
    path = ckpt_dir / TRAIN_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no {TRAIN_STATE_FILE} in {ckpt_dir}; start without --resume")
    if read_config(ckpt_dir) != model_config:
        raise ValueError(f"--resume: {ckpt_dir} holds a different model configuration than these settings; "
                         f"use the flags of the original run")
    return torch.load(path, map_location=device, weights_only=True)


def setup(cfg: TrainConfig) -> Run:
    """Data, model, EMA, optimizer, search space and loss; the state of the last checkpoint
    if cfg.resume."""
    info = distributed.setup(cfg.device)
    device = info.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    dataset, data, per_rank_batch, steps_per_epoch = load_data(cfg, info)
    N = data.shape[0]

    model_config, model, ema, parent = build_generator(cfg, dataset.resolution, dataset.channels, device)
    # The initialisation depends only on the seed (or the parent), so a resumed run has the same reference.
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([{"params": model.mapping.parameters(), "lr_scale": cfg.mapping_lr_scale},
                             {"params": model.synthesis.parameters(), "lr_scale": cfg.synthesis_lr_scale}],
                            lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay)
    train_model = DistributedDataParallel(model) if info.enabled else model
    pool_model = model
    if cfg.compile:
        # Two graphs: the train step and the pool's generation (no grad). On this project's CPU
        # each takes about a minute to compile; docs/BENCHMARKS.md has what they save.
        train_model, pool_model = torch.compile(train_model), torch.compile(model)

    project = RandomProjection(data[0].numel(), cfg.search_dim, seed=cfg.seed, device=device)
    data_features = embed_in_batches(lambda x: project(as_float(x)), data, 1024)
    data_nn = nearest_neighbour_distances(data_features)
    eps = cfg.eps_nn_fraction * float(data_nn.median()) if cfg.eps_nn_fraction > 0 else cfg.eps
    run = Run(cfg=cfg, info=info, data=data, data_features=data_features, model=model, ema=ema, opt=opt,
              meta={"data": cfg.data, "data_source": dataset.manifest.get("source"), "num_images": N},
              train_model=train_model, pool_model=pool_model, initial=initial, parent=parent, project=project,
              image_loss=ImageLoss(cfg.loss_perceptual, cfg.loss_pixel, cfg.perceptual_size).to(device),
              autocast=(torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda"
                        else nullcontext()),
              eps=eps, steps_per_epoch=steps_per_epoch, per_rank_batch=per_rank_batch)
    if cfg.resume:
        load_state(run, model_config)
    if info.is_main:
        run.log_file = open_run_folder(cfg)
        params = model.parameter_counts()
        print(f"{model_config.mapper.kind.upper()} generator: {params['mapping'] / 1e6:.2f} M mapper + "
              f"{params['synthesis'] / 1e6:.2f} M decoder parameters; {N} images of "
              f"{dataset.resolution}x{dataset.resolution}; {steps_per_epoch} steps per epoch on {device} "
              f"x {info.world_size}", file=sys.stderr)
    # The search space's own scale, so that eps can be read against it (docs/EXPERIMENTS.md).
    run.log({"event": "search_space", "eps": eps, "data_nn_distance": quantiles(data_nn)})
    return run


def build_generator(cfg: TrainConfig, resolution: int, channels: int, device: torch.device):
    """(model config, model, EMA, parent): a random initialisation from the seed, or with
    --init-from the parent checkpoint's model, weights and EMA."""
    parent = parent_of(cfg, resolution, channels, say=lambda line: print(line, file=sys.stderr))
    model_config = parent.config if parent else cfg.model_config(resolution, channels)
    torch.manual_seed(cfg.seed)
    model = Generator(model_config)
    ema = copy.deepcopy(model)
    if parent:
        model.load_state_dict(parent.weights)
        ema.load_state_dict(parent.ema)
    return model_config, model.to(device).train(), ema.to(device).eval().requires_grad_(False), parent


def budget_meta(run) -> dict:
    """meta.json's record of the budget: this stage's, the machine's, and with --init-from the
    lineage and totals over every stage. `run` is either loop's Run or adversarial's GanRun."""
    images_seen = run.step * run.cfg.batch_size
    meta = {"step": run.step, "planned_steps": run.cfg.max_steps, "epoch": run.step / run.steps_per_epoch,
            "images_seen": images_seen, "wall_time_s": run.wall_time_s, "cpu_time_s": run.cpu_time_s,
            "threads": torch.get_num_threads(), "world_size": run.info.world_size,
            "argv": command_line(run.cfg)}   # the flags of this stage, for the model card
    if run.parent:
        meta.update(run.parent.meta(run.step, images_seen, run.wall_time_s))
    return meta


def load_state(run: Run, model_config) -> None:
    """--resume: the weights, EMA, optimizer, random state and training state of the last checkpoint."""
    saved = read_train_state(run.ckpt_dir, model_config, run.info.device)
    run.model.load_state_dict(saved["model"])
    run.ema.load_state_dict(saved["ema"])
    run.opt.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng_cpu"])
    if "rng_cuda" in saved and run.info.device.type == "cuda":
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    for key in Run.STATE_KEYS:
        if key in saved:   # "diversity" came later: older states lack it
            setattr(run, key, saved[key])
    if run.latents is not None:
        run.latents = run.latents.to(run.info.device)


def save_state(run: Run) -> None:
    """The EMA checkpoint and the training state, replaced together in one atomic step: a kill
    at any moment leaves the previous complete pair or the new one."""
    if run.info.is_main:
        state = {key: getattr(run, key) for key in Run.STATE_KEYS}
        state["latents"] = run.latents.cpu() if run.latents is not None else None
        meta = {**run.meta, **budget_meta(run), "seed_diversity": run.diversity,
                "weight_change": weight_change(run.model, run.initial), "train_config": dataclasses.asdict(run.cfg)}
        save_all(run.ckpt_dir, run.model, run.ema, run.opt, state, meta)
    distributed.barrier(run.info)


def select_latents(run: Run, epoch: int) -> Selection:
    """One RS-IMLE round: every image gets the nearest surviving latent of a fresh pool."""
    cfg = run.cfg
    selection = reselect(run.pool_model, run.data_features, run.project, z_dim=run.model.z_dim, seed=cfg.seed,
                         round_=epoch, force_factor=cfg.force_factor, eps=run.eps, latent_noise=cfg.latent_noise,
                         pool_batch=cfg.pool_batch, info=run.info, pool_multiple=cfg.pool_multiple,
                         knn_ignore=cfg.knn_ignore if cfg.rejection == "knn" else 0)
    run.latents, run.latents_epoch = selection.latents.to(run.info.device), epoch
    matched = selection.index >= 0
    run.log({"event": "reselect", "step": run.step, "epoch": epoch, "pool": selection.pool_size, "eps": run.eps,
             "rejected": selection.rejected, "unmatched": int((~matched).sum()),
             "mean_distance": float(selection.distance[matched].mean()) if matched.any() else None,
             "matched_distance": quantiles(selection.distance[matched]),
             "sample_to_data_distance": selection.sample_to_data,
             "generate_s": selection.generate_s, "search_s": selection.search_s})
    return selection


def train_step(run: Run, idx: torch.Tensor) -> dict[str, float]:
    """One optimizer step on images `idx` and their selected latents; raises TrainingDiverged
    before the step if the loss or the gradients are not finite."""
    cfg = run.cfg
    for group in run.opt.param_groups:
        group["lr"] = learning_rate(cfg, run.step) * group["lr_scale"]
    with run.autocast:
        fake = run.train_model(run.latents[idx])
    losses = run.image_loss(fake, as_float(run.data[idx]))
    run.opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf"))
    loss = distributed.all_reduce_mean(losses["loss"].item(), run.info)
    if not math.isfinite(loss) or not torch.isfinite(grad_norm):
        raise TrainingDiverged(
            f"training diverged at step {run.step}: loss {loss}, gradient norm {grad_norm.item()}. "
            f"Nothing was saved after the last good checkpoint ({run.ckpt_dir}, if one was written). "
            f"Lower --lr or raise --warmup-steps, then continue with --resume.")
    run.opt.step()
    update_ema(run.ema, run.model, ema_decay(cfg, run.step, images_before(run)))
    return {"loss": loss, **{k: v.item() for k, v in losses.items() if k != "loss"}, "grad_norm": grad_norm.item()}


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
    start = time.perf_counter()
    with clock.aside("evaluation", every=run.cfg.eval_every):
        result = evaluation(run.ema)
    record = {"event": "eval", "step": run.step, "images_seen": run.step * run.cfg.batch_size,
              "wall_time_s": run.wall_time_s, "eval_s": time.perf_counter() - start, **result}
    run.log(record)
    clock.status(f"eval at step {run.step}: precision {result['precision']:.3f} | recall {result['recall']:.3f} | "
                 f"coverage {result['coverage']:.3f} | distinct nearest {result['distinct_nearest']}/"
                 f"{result['diversity_seeds']} | {record['eval_s']:.0f} s")


def train(cfg: TrainConfig) -> Path:
    run = setup(cfg)
    N, device = run.data.shape[0], run.info.device
    clock, order = Cadence(cfg, run), None
    evaluation, probe = None, DiversityProbe(run.data, run.model.z_dim) if run.info.is_main else None
    if probe and "first" not in run.diversity:   # where this run starts
        run.diversity["first"] = {"step": run.step, **probe.both(run)}
        run.log({"event": "seed_diversity", "step": run.step, **run.diversity["first"]})
    if cfg.eval_every and run.info.is_main:
        from .evaluation import TrainingEvaluation
        evaluation = TrainingEvaluation(cfg.data, cfg.eval_samples)
        if run.parent and run.step == 0:   # where this stage starts: the first point of its curve
            evaluate_now(run, evaluation, clock)
    try:
        while run.step < cfg.max_steps:
            epoch, pos = divmod(run.step, run.steps_per_epoch)
            if run.latents is None or (pos == 0 and epoch % cfg.resample_every == 0 and run.latents_epoch != epoch):
                with clock.aside("selection", every=cfg.resample_every * run.steps_per_epoch):
                    select_latents(run, epoch)
            if order is None or pos == 0:
                order = epoch_order(cfg.seed, epoch, N, run.info).to(device)
            metrics = train_step(run, order[pos * run.per_rank_batch:(pos + 1) * run.per_rank_batch])
            run.step += 1
            clock.tick(run)
            if run.step % cfg.log_every == 0:
                record = {"step": run.step, "epoch": run.step / run.steps_per_epoch, **metrics,
                          "lr": learning_rate(cfg, run.step - 1), "images_per_s": clock.images_per_s(),
                          "wall_time_s": run.wall_time_s, "weight_change": weight_change(run.model, run.initial)}
                if probe:
                    with clock.aside("probe", every=cfg.log_every):
                        record["seed_diversity"] = probe.both(run)
                    run.diversity["last"] = {"step": run.step, **record["seed_diversity"]}
                run.log(record)
                clock.status(f"{status_line(record, cfg.max_steps)} | {clock.eta()}")
            out_of_time = clock.end_of_step(run.step, run.ema, run.out, lambda: save_state(run))
            if evaluation and (run.step % cfg.eval_every == 0 or out_of_time or run.step == cfg.max_steps):
                evaluate_now(run, evaluation, clock)
            if out_of_time:
                break
    finally:
        clock.close(run.log_file)
    distributed.cleanup()
    return run.ckpt_dir


class Cadence:
    """The bookkeeping both training loops share: wall time, images/s over the last interval,
    the progress bar and status lines, and when to sample, save and stop."""

    FIRST_LINE_S = 10.0   # without a terminal, the first progress line comes after this long

    def __init__(self, cfg: TrainConfig, run):
        """`run`: loop's Run or adversarial's GanRun, at the step it starts (or resumes) from."""
        self.cfg, self.info = cfg, run.info
        self.wall_before, self.cpu_before = run.wall_time_s, run.cpu_time_s
        self.start = self.window_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.window_images = 0
        self.first_step, self.step = run.step, run.step   # step: the run's, as of the last tick
        self.asides: dict[str, list[float]] = {}   # kind -> [seconds spent, times, steps between two]
        self.bar = progress_bar(cfg, run.info, run.step)
        self.first_line_due = self.bar is None   # a log file hears of the run before its first interval

    def restart_window(self) -> None:
        self.window_start, self.window_images = time.perf_counter(), 0

    @contextlib.contextmanager
    def aside(self, kind: str, every: int):
        """Time work done besides the steps (pool selection, probes, evaluations), which recurs
        every `every` steps: the ETA counts it apart, and img/s measures the steps alone."""
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = self.asides.setdefault(kind, [0.0, 0, every])
            spent[0] += time.perf_counter() - start
            spent[1] += 1
            self.restart_window()

    def tick(self, run) -> None:
        """One step done: the run's wall and CPU time so far (including before a resume)."""
        self.window_images += self.cfg.batch_size
        self.step = run.step
        elapsed = time.perf_counter() - self.start
        if self.bar:
            self.bar.set_postfix_str(self.eta(), refresh=False)
            self.bar.update(1)
        if self.first_line_due and elapsed >= self.FIRST_LINE_S and self.step < self.cfg.max_steps:
            self.first_line_due = False
            self.status(f"step {self.step}/{self.cfg.max_steps} | {self.eta()}")
        run.wall_time_s = self.wall_before + elapsed
        run.cpu_time_s = self.cpu_before + time.process_time() - self.cpu_start

    def eta(self) -> str:
        """'ETA 12.3 min': the steps left at this process's pace so far, plus the pool selections,
        probes and evaluations still to come at their mean time so far (the first selection
        alone would make an early pace hours too slow), or --max-minutes' end if that comes first."""
        elapsed, done = time.perf_counter() - self.start, max(1, self.step - self.first_step)
        left = self.cfg.max_steps - self.step
        step_s = (elapsed - sum(spent for spent, _, _ in self.asides.values())) / done
        left_s = left * step_s + sum(spent / times * left / max(1, every) for spent, times, every in self.asides.values())
        if self.cfg.max_minutes > 0 and 60 * self.cfg.max_minutes - elapsed < left_s:
            return f"ETA {max(0.0, self.cfg.max_minutes - elapsed / 60):.1f} min (--max-minutes)"
        return f"ETA {left_s / 60:.1f} min"

    def images_per_s(self) -> float:
        rate = self.window_images / max(1e-9, time.perf_counter() - self.window_start)
        self.restart_window()
        return rate

    def status(self, line: str) -> None:
        if self.info.is_main:
            (self.bar.write if self.bar else functools.partial(print, file=sys.stderr))(line)

    def end_of_step(self, step: int, ema: Generator, out: Path, save: Callable[[], None]) -> bool:
        """Sample and save when due (always at the last step); True when the run must stop."""
        cfg = self.cfg
        out_of_time = cfg.max_minutes > 0 and time.perf_counter() - self.start > 60 * cfg.max_minutes
        last = step == cfg.max_steps or out_of_time
        if self.info.is_main and (last or (cfg.sample_every and step % cfg.sample_every == 0)):
            save_refinement_grid(ema, out / "samples" / f"step_{step:07d}.png", cfg.preview_seeds)
        if last or step % cfg.checkpoint_every == 0:
            save()
        if out_of_time and step < cfg.max_steps:
            self.status(f"stopped by --max-minutes {cfg.max_minutes:g} at step {step} of {cfg.max_steps} "
                        f"(meta.json: planned_steps); runs compared at equal steps must not stop this way")
        return out_of_time

    def close(self, log_file: Optional[IO[str]]) -> None:
        if self.bar:
            self.bar.close()
        if log_file:
            log_file.close()


def progress_bar(cfg: TrainConfig, info: distributed.DistInfo, step: int):
    # Only on a terminal: redirected to a log file, a bar is thousands of "\r" redraws on one
    # line; the status line every log_every steps says the same there.
    if not (info.is_main and cfg.progress and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    # tqdm's own time left would count the first pool selection as a step's pace (hours, at
    # first); the bar shows Cadence.eta() instead, which counts selections apart.
    return tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
