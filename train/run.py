"""The pieces of a training run that the trainer (train/trainer.py) puts together: the data on
the device, the generator and its EMA (with --init-from's parent), the run folder and its
metrics.jsonl, checkpoints with the training state and each rank's random state, the
seed-diversity probe, finiteness, and `Cadence`, the clock that says when to log, sample, save
and stop.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, Callable, Optional

import torch

from rtm_core import Generator, refinement_grid, save_checkpoint, seeds_to_z, to_pil
from rtm_core.checkpoint import read_config
from rtm_core.metrics import seed_diversity, w_spread
from rtm_core.metrics.diversity import data_spacing

from . import distributed, recipe
from .config import TrainConfig, command_line
from .cpu_threads import ThreadGovernor
from .data import load_prepared
from .device_clock import DeviceClock
from .imle import stream
from .init_from import TRAIN_STATE_FILE, parent_of, read_state_file

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
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float | torch.Tensor) -> None:
    """ema <- decay * ema + (1 - decay) * model, all parameters in one foreach call (one kernel
    launch per group on a GPU instead of one per tensor). The generator's buffers never change
    in training: copy_buffers makes the EMA's the model's once, at setup. A `decay` given as a
    0-d tensor on the device (a CUDA graph's input) is never read on the host: foreach lerp
    would take it as a number."""
    params, targets = list(ema.parameters()), [p.detach() for p in model.parameters()]
    if isinstance(decay, torch.Tensor):
        torch._foreach_mul_(params, decay)
        torch._foreach_add_(params, torch._foreach_mul(targets, 1 - decay))
    else:
        torch._foreach_lerp_(params, targets, 1.0 - decay)


@torch.no_grad()
def copy_buffers(ema: torch.nn.Module, model: torch.nn.Module) -> None:
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class DiversityProbe:
    """Seed diversity, logged at every interval for the model and its EMA: the seed spread of w
    and the distinct nearest training images (pixel RMS) of seeds 0..99's final frames. A
    collapsed arm shows here within a few hundred steps, long before any evaluation."""

    SEEDS = 100

    def __init__(self, data: torch.Tensor, z_dim: int):
        self.data = data.permute(0, 2, 3, 1).cpu().numpy()        # (N, R, R, C) uint8, as seed_diversity reads it
        self.spacing = data_spacing(self.data)                      # the data's own distances: measured once
        self.z = seeds_to_z(range(self.SEEDS), z_dim).to(data.device)

    @torch.no_grad()
    def __call__(self, generator: Generator) -> dict:
        w = generator.map(self.z)
        images = torch.cat([generator.synthesis(chunk) for chunk in w.split(25)])
        nearest = seed_diversity(images.cpu(), self.data, spacing=self.spacing)["distinct_nearest"]
        return {"w_spread": w_spread(w), "distinct_nearest": nearest}

    def both(self, model: Generator, ema: Generator) -> dict:
        """The probe of the raw generator and of its EMA. The raw one in eval mode (fixed noise
        maps: no draw from the global random generator, so --resume stays exact), back to
        training mode after."""
        model.eval()
        try:
            return {"model": self(model), "ema": self(ema)}
        finally:
            model.train()


class BatchOrder:
    """The images of each step, counted in images rather than epochs: a stream of permutations of
    the N images, one per epoch and each depending only on (seed, epoch), cut into global batches of
    B. Every image is seen once per N images whatever B is (a batch may span two epochs, or several
    when B > N), so a schedule in images means the same at batch 16 and 256. This rank takes the
    batch's positions rank, rank + W, ...; the current epochs' permutations are drawn and kept on
    the device (on a GPU, other numbers than a CPU's, the same on every rank)."""

    def __init__(self, seed: int, n: int, batch: int, info: distributed.DistInfo):
        self.seed, self.n, self.batch, self.info = seed, n, batch, info
        self.perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self.perms:
            self.perms = {e: p for e, p in self.perms.items() if e >= epoch - 1}   # the stream only moves on
            # Drawn where it is used: a permutation made on the host and copied over would make
            # the device wait for the host once an epoch.
            device = self.info.device
            self.perms[epoch] = torch.randperm(self.n, generator=stream(self.seed, "data-order", epoch, device=device),
                                               device=device)
        return self.perms[epoch]

    def __call__(self, step: int) -> torch.Tensor:
        start, end = step * self.batch, (step + 1) * self.batch
        first, last = start // self.n, (end - 1) // self.n
        rows = torch.cat([self.permutation(e) for e in range(first, last + 1)]) if last > first else self.permutation(first)
        return rows[start - first * self.n:end - first * self.n][self.info.rank::self.info.world_size]


def save_refinement_grid(ema: Generator, path: Path, num_seeds: int) -> None:
    """Rows: fixed seeds 0..n-1. Columns: the image after steps 1, 2, ..., H."""
    grid = refinement_grid(ema, range(num_seeds), range(1, ema.num_steps + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(grid).save(path)


def save_all(folder: Path, model: Generator, ema: Generator, state: dict, meta: dict,
             extra_files: dict[str, bytes]) -> None:
    """The EMA checkpoint, the training state (with the raw weights) and any extra files, replaced
    together in one atomic step: a kill at any moment leaves the previous complete set or the new one."""
    buffer = io.BytesIO()
    torch.save({**state, "model": model.state_dict(), "ema": ema.state_dict()}, buffer)
    save_checkpoint(ema, folder, meta=meta, extra_files={TRAIN_STATE_FILE: buffer.getvalue(), **extra_files})


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


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def load_data(cfg: TrainConfig, info: distributed.DistInfo):
    """(cfg, dataset, data, this rank's batch size): the prepared dataset as (N, C, R, R) uint8 on
    the device (converted per batch), and cfg with the settings it leaves to the data (0 in
    batch_size, lr, force_factor, perceptual_size: train/recipe.py) decided."""
    dataset = load_prepared(cfg.data)
    cfg, lines = recipe.from_data(cfg, dataset.images.shape[0], dataset.resolution, info.device.type, info.world_size)
    if info.is_main:
        for line in lines:
            print(line, file=sys.stderr)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world_size}")
    data = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).contiguous().to(info.device)
    return cfg, dataset, data, cfg.batch_size // info.world_size


class RunFolderTaken(ValueError):
    """--out holds another run (or other files), and this run would write over them."""


def claim_run_folder(cfg: TrainConfig, rank: int) -> None:
    """Before anything is written: a new run never writes into a folder that holds files, since it
    would replace that run's checkpoint, append to its metrics.jsonl and mix its samples. It is
    refused, or with --overwrite the folder is moved aside whole. Every rank checks before the
    process group forms, so none sees a folder half-made by this run; with --overwrite only rank 0
    checks and moves (torchrun stops the others if it fails). --resume continues the run there."""
    out = Path(os.path.abspath(cfg.out))
    if cfg.resume or (cfg.overwrite and rank != 0) or not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if out.is_symlink() or not out.is_dir() or not out.name:
        raise RunFolderTaken(f"--out {cfg.out} is {'a link' if out.is_symlink() else 'not a folder'}; "
                             f"choose another --out (a new folder)")
    inputs = [Path.cwd()] + [Path(p) for p in (cfg.data, cfg.init_from) if p and p not in ("shipped", "none")]
    inside = [str(p) for p in inputs if os.path.abspath(p) == str(out) or os.path.abspath(p).startswith(str(out) + os.sep)]
    aside, fresh = _free_sibling(out, "-previous-", 1), _free_sibling(out, "-", 2)
    if not cfg.overwrite:
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        ways = (["continue that run with --resume"] if (out / "checkpoint" / TRAIN_STATE_FILE).is_file() else []) \
            + [f"train into a new folder (--out {fresh})"] \
            + ([] if inside else [f"add --overwrite to move it aside to {aside} first"])
        ways_on = "; or ".join(ways)
        raise RunFolderTaken(
            f"--out {cfg.out} already holds {'a run' if (out / 'train_config.json').exists() else 'files'} "
            f"({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); nothing was written. "
            f"{ways_on[0].upper()}{ways_on[1:]}")
    if inside:
        raise RunFolderTaken(f"--overwrite cannot move {cfg.out} aside: it holds {', '.join(inside)} (the current "
                             f"directory, --data or --init-from); choose another --out")
    out.rename(aside)
    print(f"--overwrite: moved the earlier contents of {cfg.out} to {aside} (nothing deleted)", file=sys.stderr)


def _free_sibling(folder: Path, joint: str, first: int) -> Path:
    """FOLDER{joint}N beside the folder, with the first N from `first` not yet taken."""
    return next(p for i in range(first, first + 10_000) if not (p := folder.with_name(f"{folder.name}{joint}{i}")).exists())


def open_run_folder(cfg: TrainConfig) -> IO[str]:
    """Rank 0: the run folder with its train_config.json; returns metrics.jsonl, open for appending."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return (out / "metrics.jsonl").open("a")


def read_train_state(run, model_config) -> dict:
    """--resume: train_state.pt of the run's last checkpoint, refused if the model settings differ;
    the log says where the run continues."""
    ckpt_dir = run.ckpt_dir
    path = ckpt_dir / TRAIN_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no {TRAIN_STATE_FILE} in {ckpt_dir}: no run there saved a checkpoint to "
                                f"continue; start anew without --resume (add --overwrite if {run.out} holds files: "
                                f"they are moved aside, not deleted)")
    if read_config(ckpt_dir) != model_config:
        raise ValueError(f"--resume: {ckpt_dir} holds a different model configuration than these settings; "
                         f"use the flags of the original run")
    saved = read_state_file(path)
    objective = saved.get("objective") or ("adversarial" if "D" in saved else "imle")   # older states do not say
    if objective != run.cfg.objective:
        raise ValueError(f"--resume: {ckpt_dir} was trained with --objective {objective}; "
                         f"continue it with the same objective")
    if run.info.is_main:
        print(f"continuing the run in {run.out} from its last checkpoint, at step {saved['step']} of "
              f"{run.cfg.max_steps}", file=sys.stderr)
    return saved


def build_generator(cfg: TrainConfig, dataset, device: torch.device, info: distributed.DistInfo):
    """(model config, model, EMA, parent): a random initialisation from the seed, or with
    --init-from the parent checkpoint's model, weights and EMA. The log says which (a resumed
    run says where it continues instead, when its state is loaded)."""
    parent, line = parent_of(cfg, dataset.resolution, dataset.channels, len(dataset))
    if info.is_main and not cfg.resume:
        print(line, file=sys.stderr)
    model_config = parent.config if parent else cfg.model_config(dataset.resolution, dataset.channels)
    torch.manual_seed(cfg.seed)
    model = Generator(model_config)
    ema = copy.deepcopy(model)
    if parent:
        model.load_state_dict(parent.weights)
        ema.load_state_dict(parent.ema)
    return model_config, model.to(device).train(), ema.to(device).eval().requires_grad_(False), parent


def budget_meta(run) -> dict:
    """meta.json's record of the budget: this stage's, the machine's, and with --init-from the
    lineage and totals over every stage."""
    images_seen = run.step * run.cfg.batch_size
    meta = {"step": run.step, "planned_steps": run.cfg.max_steps, "epoch": images_seen / run.data.shape[0],
            "images_seen": images_seen, "wall_time_s": run.wall_time_s, "cpu_time_s": run.cpu_time_s,
            "threads": torch.get_num_threads(), "world_size": run.info.world_size,
            "argv": command_line(run.cfg)}   # the flags of this stage, for the model card
    if run.parent:
        meta.update(run.parent.meta(run.step, images_seen, run.wall_time_s))
    return meta


class Cadence:
    """The trainer's clock: wall time, images/s over the last interval, the progress bar and
    status lines, and when to sample, save and stop."""

    FIRST_LINE_S = 10.0   # without a terminal, the first progress line comes after this long

    def __init__(self, cfg: TrainConfig, run):
        """`run`: the trainer's Run, at the step it starts (or resumes) from."""
        self.cfg, self.info = cfg, run.info
        self.wall_before, self.cpu_before = run.wall_time_s, run.cpu_time_s
        self.start = self.window_start = self.last_save = time.perf_counter()
        self.cpu_start = time.process_time()
        self.window_images = 0
        self.first_step, self.step = run.step, run.step   # step: the run's, as of the last tick
        self.asides: dict[str, list[float]] = {}   # kind -> [seconds spent, times, steps between two]
        self.queued: list = []     # on a GPU, asides whose device time the next log step reads
        self.bar = progress_bar(cfg, run.info, run.step)
        self.first_line_due = self.bar is None   # a log file hears of the run before its first interval
        self.threads = ThreadGovernor(cfg.threads) if run.info.device.type == "cpu" else None
        if self.threads:
            self.threads.start()
            self.say_threads()

    def say_threads(self) -> None:
        if self.threads.said:
            self.status(self.threads.said)
            self.threads.said = ""

    def restart_window(self) -> None:
        self.window_start, self.window_images = time.perf_counter(), 0

    @contextlib.contextmanager
    def aside(self, kind: str, every: int):
        """Time work done besides the steps (pool selection, probes, evaluations), which recurs
        every `every` steps: the ETA counts it apart, and img/s measures the steps alone. On a GPU
        work queued aside (a selection round) goes on after the host has moved on: its device
        time is marked too, and counted at the next log step (images_per_s)."""
        start, clock = time.perf_counter(), DeviceClock(self.info.device)
        clock.mark()
        try:
            yield
        finally:
            clock.mark()
            host = time.perf_counter() - start
            spent = self.asides.setdefault(kind, [0.0, 0, every])
            spent[0] += host
            spent[1] += 1
            if clock.cuda:
                self.queued.append((spent, clock, host))
            self.restart_window()

    @contextlib.contextmanager
    def survive(self, what: str):
        """An evaluation, probe or sample grid that fails never ends a run (hours of training are
        worth more than one measurement): one line says what failed, and training goes on."""
        try:
            yield
        except Exception as e:   # noqa: BLE001 - anything; a KeyboardInterrupt still stops the run
            self.status(f"{what} failed at step {self.step} ({type(e).__name__}: {str(e)[:200]}); training goes on")

    def tick(self, run) -> None:
        """One step done: the run's wall and CPU time so far (including before a resume)."""
        self.window_images += self.cfg.batch_size
        self.step = run.step
        if self.threads:
            self.threads.update()
            self.say_threads()
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
        """The steps' images per second since the last log step (called there: the host has
        waited for the device). Work aside is left out, also what the device did of it after
        the host moved on, which the steps queued behind it waited for."""
        elapsed = time.perf_counter() - self.window_start
        for spent, clock, host in self.queued:
            late = max(0.0, clock.seconds(0, 1) - host)
            spent[0] += late
            elapsed -= late
        self.queued = []
        rate = self.window_images / max(1e-9, elapsed)
        self.restart_window()
        return rate

    def status(self, line: str) -> None:
        if self.info.is_main:
            (self.bar.write if self.bar else functools.partial(print, file=sys.stderr))(line)

    def end_of_step(self, step: int, ema: Generator, out: Path, save: Callable[[], None]) -> bool:
        """Sample and save when due (always at the last step); True when the run must stop.

        What hangs on the clock (--max-minutes, --checkpoint-minutes) is decided at log steps
        only, by every rank together (distributed.agree): each rank's clock started after its
        own setup, and a rank that left on its own would leave the others waiting."""
        cfg = self.cfg
        out_of_time = timed_save = False
        if step % cfg.log_every == 0 and (cfg.max_minutes > 0 or cfg.checkpoint_minutes > 0):
            now = time.perf_counter()
            out_of_time, timed_save = distributed.agree(
                [cfg.max_minutes > 0 and now - self.start > 60 * cfg.max_minutes,
                 cfg.checkpoint_minutes > 0 and now - self.last_save > 60 * cfg.checkpoint_minutes], self.info)
        last = step == cfg.max_steps or out_of_time
        if self.info.is_main and (last or (cfg.sample_every and step % cfg.sample_every == 0)):
            with self.survive("the sample grid"):
                save_refinement_grid(ema, out / "samples" / f"step_{step:07d}.png", cfg.preview_seeds)
        if last or timed_save or step % cfg.checkpoint_every == 0:
            save()
            self.last_save = time.perf_counter()
        if out_of_time and step < cfg.max_steps:
            self.status(f"stopped by --max-minutes {cfg.max_minutes:g} at step {step} of {cfg.max_steps}, "
                        f"{step / cfg.max_steps:.0%} of the planned images: this model has had less training than "
                        f"planned (a busy CPU is the usual cause; runs compared at equal steps must not stop this way)")
        return out_of_time

    def close(self, log_file: Optional[IO[str]]) -> None:
        if self.threads:
            self.threads.restore()
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


def rng_states(info: distributed.DistInfo) -> dict:
    """Every rank's random state (its CPU generator and its own CUDA device's), gathered to all
    ranks, for the training state: on --resume each rank gets its own back (restoring rank 0's
    on every rank would make the ranks draw the same numbers). Call on every rank."""
    mine = {"cpu": torch.get_rng_state()}
    if info.device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(info.device)
    return {"rng": distributed.all_gather_object(mine, info)}


def restore_rng_states(saved: dict, info: distributed.DistInfo) -> None:
    """This rank's random state from a training state (rng_states), as CPU ByteTensors. A state
    saved by another number of ranks gives each rank the state of rank (its rank mod theirs)."""
    if "rng" in saved:
        states = saved["rng"]
        mine = states[info.rank % len(states)]
        torch.set_rng_state(mine["cpu"].cpu())
        if "cuda" in mine and info.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"].cpu(), info.device)
        return
    torch.set_rng_state(saved["rng_cpu"].cpu())             # states written before per-rank states
    if "rng_cuda" in saved and info.device.type == "cuda":
        torch.cuda.set_rng_state(saved["rng_cuda"][0].cpu(), info.device)


def read_metrics(run, metrics: dict, averaged=("loss",)) -> dict:
    """A log step's metrics as numbers (the one host sync of the interval), averaged over ranks
    where they differ by rank (`averaged`); None stays None."""
    values = {k: None if v is None else float(v) for k, v in metrics.items()}
    for k in averaged:
        if values.get(k) is not None:
            values[k] = distributed.all_reduce_mean(values[k], run.info)
    return values


def check_finite(run, hint: str) -> None:
    """Raises TrainingDiverged if a step since the start was skipped as not finite (read at log
    and checkpoint steps only: a host sync). The weights are still the last finite ones."""
    first = int(run.first_skipped)
    if first >= 0:
        raise TrainingDiverged(
            f"training diverged at step {first}: the loss or the gradients were not finite (that step and any after it "
            f"were skipped). Nothing was saved after the last good checkpoint ({run.ckpt_dir}, if one was written). "
            f"{hint}, then continue with --resume.")


def learning_rates_on_device(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Each group's learning rate as a 0-d tensor on the device, so that a step can set it (and
    zero it for a skipped step) without a host sync; also after a state from older runs is loaded."""
    for group in opt.param_groups:
        group.setdefault("base_lr", float(group["lr"]))      # a state saved before base_lr existed
        if not isinstance(group["lr"], torch.Tensor) or group["lr"].device != device:
            group["lr"] = torch.tensor(float(group["lr"]), device=device)


def skip_if_not_finite(run, opt: torch.optim.Optimizer, finite: torch.Tensor, lrs: list) -> None:
    """Before opt.step(): each group's learning rate (0-d tensors, learning_rates_on_device) set
    to `lrs` (numbers, or 0-d tensors on the device), and the whole update skipped when the step
    is not finite: fused Adam(W) leaves the weights, the moments and the step count as they were
    where `found_inf` is 1 (the same mechanism as mixed precision's grad scaler). The first such
    step is remembered on the device in run.first_skipped, for check_finite, from the device's
    own step count. No host sync, no operation per parameter, nothing that changes from step to
    step taken from the host but `lrs`: a CUDA graph can replay it (train/graphed.py)."""
    for group, lr in zip(opt.param_groups, lrs):
        group["lr"].fill_(lr)
    opt.found_inf = (~finite).float()
    run.first_skipped.copy_(torch.where((run.first_skipped < 0) & ~finite, run.device_step, run.first_skipped))
