"""Adversarial training: StyleGAN2's objective around any rtm_core generator.

    python -m train.train --objective adversarial --preset cpu --data data/noto-faces-32 --out runs/gan-rtm
    python -m train.train --objective adversarial --preset cpu --data data/noto-faces-32 --out runs/gan-sg2 \
        --mapper.kind mlp --mapper.mlp-layer equalized --mapper.mlp-gain sqrt2 --mapper.lr-multiplier 0.01 \
        --mapping-lr-scale 1                      # StyleGAN2's own mapping network, its recipe

Every step, top to bottom (`train`):
1. `generator_step`: images from fresh latents, with style mixing; the discriminator judges
   them through DiffAugment; non-saturating logistic loss softplus(-D(G(z))); Adam; EMA.
2. `discriminator_step`: fresh images from the updated generator (new latents, no
   gradient, as StyleGAN2's Dmain phase) and a batch of real images, both augmented;
   softplus(D(fake)) + softplus(-D(real)); Adam.
3. every `pl_every` steps (if --pl-weight > 0), `path_length_step`: StyleGAN2's path-length
   regulariser on G, pl_weight x (|J_w^T y| - running mean)^2, weighted by pl_every, with
   G's Adam set up for it as D's is for R1.
4. every `r1_every` steps, `r1_step`: gamma / 2 x ||grad_x D(x)||^2 on the real batch,
   weighted by r1_every (lazy regularisation), and the discriminator's Adam is set up for
   it as StyleGAN2 does (lr and betas raised to r1_every / (r1_every + 1)).

The generator is `rtm_core.Generator`, saved in the rtm_core format (its EMA), so the app
and train.evaluate open it unchanged; the discriminator is saved beside it
(discriminator.safetensors + discriminator.json) and in train_state.pt for --resume.
Every random draw of a step (latents, mixing, augmentation) comes from a named stream of
(seed, step), drawn for the global batch and sliced to this rank's rows: a resumed run and
a run on N ranks see the same numbers as one uninterrupted process. The one exception is the
decoder's per-pixel noise (on in the cpu and gpu presets, as StyleGAN2): drawn by each rank
from torch's global generator, whose state --resume restores.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes

from rtm_core import Generator, save_checkpoint

from . import distributed
from .augment import diff_augment
from .config import TrainConfig
from .discriminator import Discriminator, DiscriminatorConfig
from .imle import stream
from .init_from import Parent
from .init_from import TRAIN_STATE_FILE
from .run import (BatchOrder, Cadence, claim_run_folder, DiversityProbe, RunFolder, as_float, budget_meta, build_generator,
                  check_finite, ema_decay, images_before, learning_rates_on_device, load_data, open_run_folder,
                  read_metrics, read_train_state, relative_change, restore_rng_states, rng_states, skip_if_not_finite,
                  update_ema, weight_change)

DISCRIMINATOR_FILE = "discriminator.safetensors"
DISCRIMINATOR_CONFIG_FILE = "discriminator.json"


@dataclass
class GanRun(RunFolder):
    """Everything an adversarial run holds between two steps (`step`, `wall_time_s` are its state)."""

    cfg: TrainConfig
    info: distributed.DistInfo
    data: torch.Tensor                  # (N, C, R, R) uint8 on the device
    meta: dict
    G: Generator
    G_ema: Generator
    D: Discriminator
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    map_G: Callable                     # G.map and G.synthesize, each compiled with --compile on CUDA (compiling G
    synthesize_G: Callable              # itself would compile only forward(): its methods would run eager)
    run_D: torch.nn.Module              # D, maybe compiled (R1 always uses D itself: it needs a double backward)
    initial_G: dict[str, torch.Tensor]  # initial weights, for weight_change
    initial_D: list[torch.Tensor]
    parent: Optional[Parent]            # --init-from's checkpoint (G and G_ema; D starts fresh)
    autocast: Any
    per_rank_batch: int
    step: int = 0
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0             # this process's CPU seconds (as loop.Run)
    pl_mean: Any = 0.0                  # running mean of the path lengths, 0-d on the device (path_length_step); a float in the state
    first_skipped: Optional[torch.Tensor] = None   # 0-d on the device: the first non-finite step skipped, or -1
    log_file: Optional[IO[str]] = field(default=None, repr=False)

    STATE_KEYS = ("step", "wall_time_s", "cpu_time_s", "pl_mean")

    def weight_change(self) -> dict[str, float]:
        """How far the mapper, the decoder and the discriminator moved from their initialisation."""
        return {**weight_change(self.G, self.initial_G),
                "discriminator": relative_change(zip(self.D.parameters(), self.initial_D))}

    @property
    def rows(self) -> slice:
        """This rank's images of a global batch: positions rank, rank + W, ... (as BatchOrder)."""
        return slice(self.info.rank, None, self.info.world_size)


def discriminator_config(cfg: TrainConfig, resolution: int, channels: int) -> DiscriminatorConfig:
    return DiscriminatorConfig(img_resolution=resolution, img_channels=channels, channel_base=cfg.d_channel_base,
                               channel_max=cfg.d_channel_max)


def setup(cfg: TrainConfig) -> GanRun:
    claim_run_folder(cfg, distributed.rank_from_environment())   # before anything is written, before the ranks meet
    info = distributed.setup(cfg.device)
    device = info.device
    cfg, dataset, data, per_rank_batch = load_data(cfg, info)   # cfg: with what the data decides
    N = data.shape[0]

    model_config, G, G_ema, parent = build_generator(cfg, dataset, device, info)
    D = Discriminator(discriminator_config(cfg, dataset.resolution, dataset.channels)).to(device).train()
    # StyleGAN2's Adam: beta1 = 0. D's rate and betas are adjusted for the lazy R1 steps, G's
    # for the lazy path-length steps (when they are on).
    ratio = cfg.r1_every / (cfg.r1_every + 1)
    g_ratio = cfg.pl_every / (cfg.pl_every + 1) if cfg.pl_weight > 0 else 1.0
    # Fused Adam, each group's rate a 0-d tensor on the device (its float in "base_lr"): a step
    # sets it, times 0 when not finite, without waiting for the host (run.skip_if_not_finite).
    def group(params, lr: float) -> dict:
        return {"params": params, "lr": torch.tensor(lr, device=device), "base_lr": lr}

    opt_G = torch.optim.Adam([group(G.mapping.parameters(), cfg.lr * cfg.mapping_lr_scale * g_ratio),
                              group(G.synthesis.parameters(), cfg.lr * cfg.synthesis_lr_scale * g_ratio)],
                             betas=(0.0, 0.99 ** g_ratio), eps=1e-8, fused=True)
    opt_D = torch.optim.Adam([group(D.parameters(), cfg.lr * cfg.d_lr_scale * ratio)], betas=(0.0, 0.99 ** ratio),
                             eps=1e-8, fused=True)
    compiled = cfg.compile and device.type == "cuda"
    run = GanRun(cfg=cfg, info=info, data=data, G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D,
                 map_G=torch.compile(G.map) if compiled else G.map,
                 synthesize_G=torch.compile(G.synthesize) if compiled else G.synthesize,
                 run_D=torch.compile(D) if compiled else D,
                 meta={"data": cfg.data, "data_source": dataset.manifest.get("source"), "num_images": N,
                       "objective": "adversarial"},
                 initial_G={n: p.detach().clone() for n, p in G.named_parameters()}, parent=parent,
                 initial_D=[p.detach().clone() for p in D.parameters()], per_rank_batch=per_rank_batch,
                 autocast=(torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda"
                           else nullcontext()))
    if cfg.resume:
        load_state(run, model_config)
    for opt in (opt_G, opt_D):
        learning_rates_on_device(opt, device)
    run.first_skipped = torch.tensor(-1, device=device)
    run.pl_mean = torch.tensor(float(run.pl_mean), device=device)
    if info.is_main:
        run.log_file = open_run_folder(cfg)
        print(f"adversarial {model_config.mapper.kind.upper()} generator: {G.parameter_counts()['mapping'] / 1e6:.2f} M "
              f"mapper + {G.parameter_counts()['synthesis'] / 1e6:.2f} M decoder; discriminator "
              f"{sum(p.numel() for p in D.parameters()) / 1e6:.2f} M; {N} images of {dataset.resolution}px on "
              f"{device} x {info.world_size}", file=sys.stderr)
    return run


def load_state(run: GanRun, model_config) -> None:
    saved = read_train_state(run, model_config)
    for key, target in (("G", run.G), ("G_ema", run.G_ema), ("D", run.D), ("opt_G", run.opt_G), ("opt_D", run.opt_D)):
        target.load_state_dict(saved[key])
    for key in GanRun.STATE_KEYS:
        if key in saved:   # "cpu_time_s" came later: older states lack it
            setattr(run, key, saved[key])
    # The generator's per-pixel noise (decoder.noise) is the one draw from the global generator.
    restore_rng_states(saved, run.info)


def save_state(run: GanRun) -> None:
    """G's EMA as an rtm_core checkpoint, the discriminator beside it, and everything --resume
    needs, in one atomic folder swap."""
    rng = rng_states(run.info)                      # every rank takes part
    if run.info.is_main:
        state = {"G": run.G.state_dict(), "G_ema": run.G_ema.state_dict(), "D": run.D.state_dict(),
                 "opt_G": run.opt_G.state_dict(), "opt_D": run.opt_D.state_dict(),
                 **{key: getattr(run, key) for key in GanRun.STATE_KEYS}, "pl_mean": float(run.pl_mean), **rng}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        d_weights = {k: v.detach().cpu().contiguous() for k, v in run.D.state_dict().items()}
        meta = {**run.meta, **budget_meta(run),
                "weight_change": run.weight_change(), "train_config": dataclasses.asdict(run.cfg)}
        save_checkpoint(run.G_ema, run.ckpt_dir, meta=meta, extra_files={
            TRAIN_STATE_FILE: buffer.getvalue(), DISCRIMINATOR_FILE: safetensors_bytes(d_weights),
            DISCRIMINATOR_CONFIG_FILE: (json.dumps(dataclasses.asdict(run.D.config), indent=2) + "\n").encode()})
    distributed.barrier(run.info)


_LATENTS = {"generator": "gan-latents", "discriminator": "gan-latents-d", "path-length": "gan-latents-pl"}


def fake_images(run: GanRun, phase: str) -> torch.Tensor:
    """This rank's images of the step's global batch for one phase ("generator" or
    "discriminator": each has its own latents, as in StyleGAN2's training loop)."""
    with run.autocast:
        return run.synthesize_G(styles(run, phase, run.cfg.batch_size)).float()


def styles(run: GanRun, phase: str, batch: int) -> torch.Tensor:
    """This rank's w per layer (b, num_ws, w_dim) for a global batch of `batch` latents of the
    phase's stream: styles mixed at a random layer for a `style_mixing` share of them (so no
    layer can rely on one style)."""
    cfg, device = run.cfg, run.info.device
    gen = stream(cfg.seed, _LATENTS[phase], run.step, device=device)     # drawn where they are used: no copies
    B, z_dim = batch, run.G.z_dim
    z, z_mix = (torch.randn(B, z_dim, generator=gen, device=device)[run.rows] for _ in range(2))
    num_ws = run.G.config.num_ws
    cutoff = torch.randint(1, max(2, num_ws), (B,), generator=gen, device=device)[run.rows]
    mixed = torch.rand(B, generator=gen, device=device)[run.rows] < cfg.style_mixing
    w = run.map_G(z)[:, None].expand(-1, num_ws, -1)                         # (b, num_ws, w_dim)
    if cfg.style_mixing > 0 and num_ws > 1:
        take_mix = (torch.arange(num_ws, device=device)[None] >= cutoff[:, None]) & mixed[:, None]
        w = torch.where(take_mix[..., None], run.map_G(z_mix)[:, None], w)
    return w


def judge(run: GanRun, images: torch.Tensor, phase: str, D: Optional[torch.nn.Module] = None,
          amp: bool = True) -> torch.Tensor:
    """D's logits for this rank's images, augmented with the step's `phase` stream (under
    bf16 autocast on CUDA unless amp=False)."""
    cfg = run.cfg
    augmented = diff_augment(images, cfg.augment, stream(cfg.seed, "augment", run.step, _PHASES[phase],
                                                         device=images.device),
                             cfg.batch_size, run.rows)
    with run.autocast if amp else nullcontext():
        return (run.run_D if D is None else D)(augmented).float()


def r1_gamma(cfg: TrainConfig, resolution: int) -> float:
    """--r1-gamma, or StyleGAN2-ADA's heuristic 0.0002 x resolution^2 / batch when it is -1."""
    return cfg.r1_gamma if cfg.r1_gamma >= 0 else 0.0002 * resolution ** 2 / cfg.batch_size


_PHASES = {"generator": 0, "fake": 1, "real": 2, "r1": 3}
AVERAGED = ("loss_G", "loss_D", "d_real", "d_fake", "d_gap", "r1_penalty", "pl_penalty")   # per rank: averaged at log time
DIVERGED_HINT = "Lower --lr or raise --r1-gamma"


def _step(run: GanRun, opt: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor,
          what: str) -> torch.Tensor:
    """One optimizer step of `module` on `loss`, without a host sync: a step whose averaged
    gradients are not finite (the same on every rank) is skipped on the device, and the run stops
    at the next log or checkpoint (check_finite). Returns this rank's loss, on the device."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(module, run.info)
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
    skip_if_not_finite(run, opt, module, finite, [group["base_lr"] for group in opt.param_groups])
    opt.step()
    return loss.detach()


def generator_step(run: GanRun) -> torch.Tensor:
    run.D.requires_grad_(False)
    fake = fake_images(run, "generator")
    loss = F.softplus(-judge(run, fake, "generator")).mean()     # non-saturating: maximise log D(G(z))
    value = _step(run, run.opt_G, run.G, loss, "generator")
    run.D.requires_grad_(True)
    update_ema(run.G_ema, run.G, ema_decay(run.cfg, run.step, images_before(run)))
    return value


def discriminator_step(run: GanRun, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """D against fresh fakes of the generator just updated (reusing the G step's images would
    show D the generator of one step ago), and against the real batch."""
    with torch.no_grad():
        fake = fake_images(run, "discriminator")
    fake_logits, real_logits = judge(run, fake, "fake"), judge(run, real, "real")
    loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    value = _step(run, run.opt_D, run.D, loss, "discriminator")
    # D's confidence, as probabilities: 0.5 / 0.5 is chance; the gap is how well it tells them apart.
    p_real, p_fake = torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()
    return {"loss_D": value, "d_real": p_real, "d_fake": p_fake, "d_gap": p_real - p_fake}


def path_length_step(run: GanRun) -> float:
    """StyleGAN2's path-length regulariser: for y ~ N(0, I) / sqrt(pixels), the length of
    J_w^T y per image should stay at its running mean (a fixed-size step in w makes a
    fixed-size change in the image). pl_weight x (length - mean)^2, weighted by pl_every; in
    float32. The running mean follows the mean over all ranks, so N ranks equal 1 process."""
    cfg = run.cfg
    run.D.requires_grad_(False)
    batch = max(1, cfg.batch_size // cfg.pl_batch_shrink)
    w = styles(run, "path-length", batch)            # not detached: the penalty reaches the mapper too
    images = run.G.synthesize(w)
    noise = torch.randn(batch, *images.shape[1:], generator=stream(cfg.seed, "gan-pl-noise", run.step, device=images.device),
                        device=images.device)
    noise = noise[run.rows].to(images.device) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), w, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()                    # (b,)
    # The running mean stays on the device (no host sync): a float only at log and checkpoint steps.
    batch_mean = distributed.mean_over_ranks(lengths.mean().detach(), run.info)
    run.pl_mean = run.pl_mean + cfg.pl_decay * (batch_mean - run.pl_mean)
    penalty = (lengths - run.pl_mean).square().mean()
    _step(run, run.opt_G, run.G, penalty * cfg.pl_weight * cfg.pl_every, "path length")
    run.D.requires_grad_(True)
    return penalty.detach()


def r1_step(run: GanRun, real: torch.Tensor) -> float:
    """Lazy R1: gamma / 2 x E ||grad_x D(x)||^2 on reals, weighted by r1_every; in float32
    (a gradient norm squared in bf16 loses the small penalties it exists for)."""
    real = real.detach().requires_grad_(True)
    logits = judge(run, real, "r1", D=run.D, amp=False)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grad.square().sum(dim=(1, 2, 3)).mean()
    gamma = r1_gamma(run.cfg, real.shape[-1])
    _step(run, run.opt_D, run.D, penalty * (gamma / 2) * run.cfg.r1_every, "R1")
    return penalty.detach()


def probe_raw(probe: DiversityProbe, G: Generator) -> dict:
    """The probe on the raw generator in eval mode (fixed noise maps: no draw from the global
    RNG, so --resume stays exact), back to training mode after."""
    G.eval()
    try:
        return probe(G)
    finally:
        G.train()


def train(cfg: TrainConfig) -> Path:
    run = setup(cfg)
    cfg = run.cfg   # with the settings the data decided (train/recipe.py)
    N = run.data.shape[0]
    clock, order, r1, pl = Cadence(cfg, run), BatchOrder(cfg.seed, N, cfg.batch_size, run.info), None, None
    probe = DiversityProbe(run.data, run.G.z_dim) if run.info.is_main else None
    try:
        while run.step < cfg.max_steps:
            real = as_float(run.data[order(run.step)])
            loss_G = generator_step(run)
            if cfg.pl_weight > 0 and run.step % cfg.pl_every == 0:
                pl = path_length_step(run)
            metrics = {"loss_G": loss_G, **discriminator_step(run, real)}
            if run.step % cfg.r1_every == 0:
                r1 = r1_step(run, real)
            run.step += 1
            clock.tick(run)
            if run.step % cfg.log_every == 0:
                check_finite(run, DIVERGED_HINT)
                values = read_metrics(run, {**metrics, "r1_penalty": r1, "pl_penalty": pl}, averaged=AVERAGED)
                record = {"step": run.step, "epoch": run.step * cfg.batch_size / N, **values, "pl_mean": float(run.pl_mean),
                          "images_per_s": clock.images_per_s(), "wall_time_s": run.wall_time_s,
                          "weight_change": run.weight_change()}
                run.log(record)
                metrics = values
                clock.status(f"step {run.step}/{cfg.max_steps} | loss_G {values['loss_G']:.4f} | loss_D {metrics['loss_D']:.4f} | "
                             f"D(real) {metrics['d_real']:.3f} D(fake) {metrics['d_fake']:.3f} | "
                             f"{record['images_per_s']:.1f} img/s | {run.wall_time_s / 60:.1f} min | {clock.eta()}")
            if probe is not None and run.step % cfg.checkpoint_every == 0:
                # The raw generator beside its EMA (what is saved and sampled), at every checkpoint.
                with clock.survive("the seed-diversity probe"), clock.aside("probe", every=cfg.checkpoint_every):
                    both = {"model": probe_raw(probe, run.G), "ema": probe(run.G_ema)}
                    run.log({"event": "seed_diversity", "step": run.step, **both})
                    clock.status(f"step {run.step}: distinct nearest of {DiversityProbe.SEEDS} seeds raw "
                                 f"{both['model']['distinct_nearest']}, EMA {both['ema']['distinct_nearest']}; "
                                 f"w-spread raw {both['model']['w_spread']:.2f}, EMA {both['ema']['w_spread']:.2f}")
            if clock.end_of_step(run.step, run.G_ema, run.out, lambda: (check_finite(run, DIVERGED_HINT), save_state(run))):
                break
    finally:
        clock.close(run.log_file)
    distributed.cleanup()
    return run.ckpt_dir
