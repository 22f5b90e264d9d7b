"""The one training loop, whatever the objective (train/objectives/: RS-IMLE or adversarial).

Read top to bottom: `setup` builds the run (data, generator and its EMA, the objective; the
last checkpoint's state with --resume), `save_state` writes one atomic checkpoint, and `train`
is the loop:

    while steps are left:
        the objective's work before the step (RS-IMLE: a selection round when due)
        the objective's step on this rank's share of the batch, at the scheduled learning rate
        the EMA of the generator
        at log steps: finiteness, the objective's records, metrics, the seed-diversity probe, a status line
        when due: a sample grid, a checkpoint, an evaluation; the time limit

Everything a step or a selection round produces stays on the device; the host reads it at log
steps only (--sync-debug makes CUDA raise where it would wait anywhere else).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

import torch

from rtm_core import Generator

from . import distributed
from .config import TrainConfig
from .init_from import Parent
from .objectives import Objective, make_objective
from .run import (BatchOrder, Cadence, DiversityProbe, RunFolder, budget_meta, build_generator, check_finite,
                  claim_run_folder, copy_buffers, ema_decay, images_before, load_data, open_run_folder, read_metrics,
                  read_train_state, restore_rng_states, rng_states, save_all, update_ema, weight_change)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """The learning rate at `step` as a share of each optimizer's base rate. Linear warmup, then
    constant: independent of max_steps, so a run extended with --resume --max-steps follows the
    same schedule as one planned that long. "cosine" decays to lr_final_scale at max_steps (and
    stays there), for a stage meant to end."""
    warmup = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "constant":
        return warmup
    progress = min(1.0, max(0, step + 1 - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return warmup * (cfg.lr_final_scale + (1 - cfg.lr_final_scale) * 0.5 * (1 + math.cos(math.pi * progress)))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """--lr as scheduled at `step` (each optimizer group scales its own base rate the same way)."""
    return cfg.lr * lr_factor(cfg, step)


@dataclass
class Run(RunFolder):
    """Everything a training run holds between two steps. STATE_KEYS are the training state that
    --resume restores beside the weights and the objective's own state."""

    cfg: TrainConfig
    info: distributed.DistInfo
    data: torch.Tensor                  # (N, C, R, R) uint8 on the device, converted per batch
    meta: dict                          # what the data was, for meta.json
    model: Generator                    # the generator being trained
    ema: Generator                      # its EMA: what is sampled, evaluated and shipped
    initial: dict[str, torch.Tensor]    # the initial weights (--init-from: the parent's), for weight_change
    parent: Optional[Parent]            # --init-from's checkpoint: its lineage goes into meta.json
    per_rank_batch: int
    objective: Optional[Objective] = None
    step: int = 0
    first_skipped: Optional[torch.Tensor] = None   # 0-d on the device: the first non-finite step skipped, or -1
    device_step: Optional[torch.Tensor] = None     # 0-d on the device: the device's own count of steps taken
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0     # this process's CPU seconds: the budget, whatever shared the machine or paused the run
    diversity: dict = field(default_factory=dict)   # DiversityProbe at the run's first and latest probe
    log_file: Optional[IO[str]] = field(default=None, repr=False)

    STATE_KEYS = ("step", "wall_time_s", "cpu_time_s", "diversity")

    def weight_change(self) -> dict[str, float]:
        return {**weight_change(self.model, self.initial), **self.objective.weight_change()}


def setup(cfg: TrainConfig) -> Run:
    """Data, generator, EMA and objective; the state of the last checkpoint if cfg.resume."""
    if cfg.cuda_graph and distributed.world_size_from_environment() > 1:
        raise ValueError("--cuda-graph runs on one GPU: a replayed graph would skip DistributedDataParallel's "
                         "gradient averaging as it is set up here; leave it off under torchrun")
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
    run = Run(cfg=cfg, info=info, data=data, model=model, ema=ema, initial=initial, parent=parent,
              per_rank_batch=per_rank_batch, meta={"data": cfg.data, "data_source": dataset.manifest.get("source"),
                                                   "num_images": N, "objective": cfg.objective})
    run.objective = make_objective(cfg.objective, run)
    if cfg.resume:
        load_state(run, model_config)
    copy_buffers(ema, model)
    run.first_skipped = torch.full((), -1, dtype=torch.long, device=device)
    run.device_step = torch.full((), run.step, dtype=torch.long, device=device)
    if info.is_main:   # only now: a run refused above has written nothing
        run.log_file = open_run_folder(cfg)
        for record in run.objective.opening_records():
            run.log(record)
        params = model.parameter_counts()
        print(f"{cfg.objective} training of an {model_config.mapper.kind.upper()} generator: {params['mapping'] / 1e6:.2f} M "
              f"mapper + {params['synthesis'] / 1e6:.2f} M decoder parameters; {run.objective.describe()}; {N} images of "
              f"{dataset.resolution}x{dataset.resolution}; batch {cfg.batch_size} on {device} x {info.world_size}",
              file=sys.stderr)
    return run


def load_state(run: Run, model_config) -> None:
    """--resume: the weights, EMA, objective, random state and training state of the last checkpoint."""
    saved = read_train_state(run, model_config)
    run.model.load_state_dict(saved["model"])
    run.ema.load_state_dict(saved["ema"])
    run.objective.load_state_dict(saved)
    restore_rng_states(saved, run.info)
    for key in Run.STATE_KEYS:
        if key in saved:   # older states lack some keys
            setattr(run, key, saved[key])


def save_state(run: Run) -> None:
    """The EMA checkpoint and the training state (with the objective's), replaced together in one
    atomic step: a kill at any moment leaves the previous complete pair or the new one."""
    write_records(run)          # before the state that says those rounds were done
    check_finite(run, run.objective.diverged_hint)
    rng = rng_states(run.info)                      # every rank takes part
    if run.info.is_main:
        state = {"objective": run.cfg.objective, **{key: getattr(run, key) for key in Run.STATE_KEYS},
                 **run.objective.state_dict(), **rng}
        meta = {**run.meta, **budget_meta(run), "seed_diversity": run.diversity,
                "weight_change": run.weight_change(), "train_config": dataclasses.asdict(run.cfg)}
        save_all(run.ckpt_dir, run.model, run.ema, state, meta, run.objective.extra_files())
    distributed.barrier(run.info)


def status_line(run: Run, record: dict) -> str:
    """One greppable line per interval: `step 250/1500 | loss 0.4121 | ... | 38.1 img/s | 6.2 min`."""
    parts = [f"step {record['step']}/{run.cfg.max_steps}", *run.objective.status(record)]
    if "seed_diversity" in record:
        ema = record["seed_diversity"]["ema"]
        parts.append(f"distinct {ema['distinct_nearest']}/{DiversityProbe.SEEDS} w-spread {ema['w_spread']:.2f}")
    parts += [f"{record['images_per_s']:.1f} img/s", f"{record['wall_time_s'] / 60:.1f} min"]
    return " | ".join(parts)


def evaluate_now(run: Run, evaluation, clock: Cadence) -> None:
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


def probe_now(run: Run, probe: DiversityProbe, clock: Cadence, key: str) -> Optional[dict]:
    """The seed-diversity probe of the raw generator and its EMA, kept as the run's `key`
    ("first" or "last") diversity; None if it failed."""
    both = None
    with clock.survive("the seed-diversity probe"), clock.aside("probe", every=probe_interval(run.cfg)):
        both = probe.both(run.model, run.ema)
        run.diversity[key] = {"step": run.step, **both}
    return both


def probe_interval(cfg: TrainConfig) -> int:
    """--probe-every, or every log step when it is 0."""
    return cfg.probe_every or cfg.log_every


def training_step(run: Run):
    """`step(rows, lr_factor, decay) -> metrics`: the objective's step, the EMA and the device's
    step count, all on the device; with --cuda-graph on a GPU, captured once and replayed."""
    def step(rows, factor, decay) -> dict:
        metrics = run.objective.step(run, rows, factor)
        update_ema(run.ema, run.model, decay)
        run.device_step += 1
        return metrics

    if run.cfg.cuda_graph and run.info.device.type == "cuda":
        from .graphed import GraphedStep
        return GraphedStep(step, run.per_rank_batch, run.info.device)
    return step


def write_records(run: Run) -> None:
    """The objective's records (RS-IMLE: its selection rounds' figures) into metrics.jsonl."""
    for line in run.objective.records(run):
        run.log(line)


@contextlib.contextmanager
def host_waits_refused(refuse: bool):
    """--sync-debug: CUDA raises at any operation that makes the host wait for the device (a read
    of a value, a blocking copy, an operator whose output size depends on the data)."""
    if not refuse:
        yield
        return
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


def train(cfg: TrainConfig) -> Path:
    run = setup(cfg)
    cfg = run.cfg   # with the settings the data decided (train/recipe.py)
    N = run.data.shape[0]
    clock, order = Cadence(cfg, run), BatchOrder(cfg.seed, N, cfg.batch_size, run.info)
    evaluation, probe = None, DiversityProbe(run.data, run.model.z_dim) if run.info.is_main else None
    if probe and "first" not in run.diversity:   # where this run starts
        if (first := probe_now(run, probe, clock, "first")) is not None:
            run.log({"event": "seed_diversity", "step": run.step, **first})
    if cfg.eval_every and run.info.is_main:
        from .evaluation import TrainingEvaluation
        evaluation = TrainingEvaluation(cfg.data, cfg.eval_samples, device=run.info.device)
        if run.parent and run.step == 0:   # where this stage starts: the first point of its curve
            evaluate_now(run, evaluation, clock)
    step = training_step(run)
    try:
        while run.step < cfg.max_steps:
            with host_waits_refused(cfg.sync_debug and run.info.device.type == "cuda"):
                run.objective.before_step(run, clock)
                metrics = step(order(run.step), lr_factor(cfg, run.step), ema_decay(cfg, run.step, images_before(run)))
            run.step += 1
            clock.tick(run)
            logging = run.step % cfg.log_every == 0
            if logging:   # the interval's figures first: the probe's time is not the steps'
                write_records(run)
                check_finite(run, run.objective.diverged_hint)
                record = {"step": run.step, "epoch": run.step * cfg.batch_size / N,
                          **read_metrics(run, metrics, run.objective.averaged), **run.objective.log_extra(),
                          "lr": learning_rate(cfg, run.step - 1), "images_per_s": clock.images_per_s(),
                          "wall_time_s": run.wall_time_s, "weight_change": run.weight_change()}
            both = probe_now(run, probe, clock, "last") if probe and run.step % probe_interval(cfg) == 0 else None
            if logging:
                if both:
                    record["seed_diversity"] = both
                run.log(record)
                clock.status(f"{status_line(run, record)} | {clock.eta()}")
            elif both:
                run.log({"event": "seed_diversity", "step": run.step, **both})
            out_of_time = clock.end_of_step(run.step, run.ema, run.out, lambda: save_state(run))
            if evaluation and (run.step % cfg.eval_every == 0 or out_of_time or run.step == cfg.max_steps):
                evaluate_now(run, evaluation, clock)
            if out_of_time:
                break
    finally:
        with contextlib.suppress(Exception):   # what the rounds since the last log found, even after a failure
            write_records(run)
        clock.close(run.log_file)
    distributed.cleanup()
    return run.ckpt_dir
