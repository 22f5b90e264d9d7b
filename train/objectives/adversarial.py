"""StyleGAN2's adversarial objective around any rtm_core generator.

    python -m train.train --objective adversarial --preset cpu --data data/noto-faces-32 --out runs/gan-rtm
    python -m train.train --objective adversarial --preset cpu --data data/noto-faces-32 --out runs/gan-sg2 \
        --mapper.kind mlp --mapper.mlp-layer equalized --mapper.mlp-gain sqrt2 --mapper.lr-multiplier 0.01 \
        --mapping-lr-scale 1                      # StyleGAN2's own mapping network, its recipe

One step, top to bottom (`step`), as StyleGAN2's phases:
1. `generator_step`: images from fresh latents, with style mixing; the discriminator judges
   them through DiffAugment; non-saturating logistic loss softplus(-D(G(z))); Adam.
2. every `pl_every` steps (if --pl-weight > 0), `path_length_step`: the path-length
   regulariser on G, pl_weight x (|J_w^T y| - running mean)^2, weighted by pl_every, with
   G's Adam set up for it as D's is for R1.
3. `discriminator_step`: fresh images from the updated generator (new latents, no gradient, as
   StyleGAN2's Dmain phase) and a batch of real images, both augmented;
   softplus(D(fake)) + softplus(-D(real)); Adam.
4. every `r1_every` steps, `r1_step`: gamma / 2 x ||grad_x D(x)||^2 on the real batch,
   weighted by r1_every (lazy regularisation), and the discriminator's Adam is set up for
   it as StyleGAN2 does (lr and betas raised to r1_every / (r1_every + 1)).
The trainer then updates G's EMA, after every phase of the step (as StyleGAN2's loop does).

The discriminator is saved beside the generator's checkpoint (discriminator.safetensors +
discriminator.json) and in train_state.pt for --resume. Every random draw of a step (latents,
mixing, augmentation) comes from a named stream of (seed, step), drawn for the global batch and
sliced to this rank's rows: a resumed run and a run on N ranks see the same numbers as one
uninterrupted process. The one exception is the decoder's per-pixel noise (on in the cpu and gpu
presets, as StyleGAN2): drawn by each rank from torch's global generator, whose state --resume
restores.
"""

from __future__ import annotations

import dataclasses
import json
import math
from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes

from .. import distributed
from ..augment import diff_augment
from ..config import TrainConfig
from ..discriminator import Discriminator, DiscriminatorConfig
from ..imle import stream
from ..run import as_float, learning_rates_on_device, relative_change, skip_if_not_finite
from .base import Objective

DISCRIMINATOR_FILE = "discriminator.safetensors"
DISCRIMINATOR_CONFIG_FILE = "discriminator.json"
_LATENTS = {"generator": "gan-latents", "discriminator": "gan-latents-d", "path-length": "gan-latents-pl"}
_PHASES = {"generator": 0, "fake": 1, "real": 2, "r1": 3}


def discriminator_config(cfg: TrainConfig, resolution: int, channels: int) -> DiscriminatorConfig:
    return DiscriminatorConfig(img_resolution=resolution, img_channels=channels, channel_base=cfg.d_channel_base,
                               channel_max=cfg.d_channel_max)


def r1_gamma(cfg: TrainConfig, resolution: int) -> float:
    """--r1-gamma, or StyleGAN2-ADA's heuristic 0.0002 x resolution^2 / batch when it is -1."""
    return cfg.r1_gamma if cfg.r1_gamma >= 0 else 0.0002 * resolution ** 2 / cfg.batch_size


class Adversarial(Objective):
    name = "adversarial"
    averaged = ("loss_G", "loss_D", "d_real", "d_fake", "d_gap", "r1_penalty", "pl_penalty")
    diverged_hint = "Lower --lr or raise --r1-gamma"

    def __init__(self, run):
        cfg, device, G = run.cfg, run.info.device, run.model
        self.device = device
        self.D = Discriminator(discriminator_config(cfg, run.data.shape[-1], run.data.shape[1])).to(device).train()
        # StyleGAN2's Adam: beta1 = 0. D's rate and betas are adjusted for the lazy R1 steps, G's
        # for the lazy path-length steps (when they are on).
        ratio = cfg.r1_every / (cfg.r1_every + 1)
        g_ratio = cfg.pl_every / (cfg.pl_every + 1) if cfg.pl_weight > 0 else 1.0
        self.base_lrs = {"G": [cfg.lr * cfg.mapping_lr_scale * g_ratio, cfg.lr * cfg.synthesis_lr_scale * g_ratio],
                         "D": [cfg.lr * cfg.d_lr_scale * ratio]}
        G_groups = [{"params": G.mapping.parameters()}, {"params": G.synthesis.parameters()}]
        self.opt_G = torch.optim.Adam(G_groups, lr=cfg.lr, betas=(0.0, 0.99 ** g_ratio), eps=1e-8, fused=True)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.0, 0.99 ** ratio), eps=1e-8, fused=True)
        self.optimizers = [self.opt_G, self.opt_D]
        for opt, bases in ((self.opt_G, self.base_lrs["G"]), (self.opt_D, self.base_lrs["D"])):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base
            learning_rates_on_device(opt, device)   # 0-d tensors: a step sets them without a host sync
        compiled = cfg.compile and device.type == "cuda"
        # G.map and G.synthesize compiled apart: compiling G itself would compile only forward().
        self.map_G = torch.compile(G.map) if compiled else G.map
        self.synthesize_G = torch.compile(G.synthesize) if compiled else G.synthesize
        self.run_D = torch.compile(self.D) if compiled else self.D   # R1 uses D itself: it needs a double backward
        self.initial_D = [p.detach().clone() for p in self.D.parameters()]
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext()
        self.rows = slice(run.info.rank, None, run.info.world_size)   # this rank's share of a global batch
        self.pl_mean = torch.tensor(0.0, device=device)   # running mean of the path lengths, on the device
        self.r1: Optional[torch.Tensor] = None             # the last penalties, for the log
        self.pl: Optional[torch.Tensor] = None

    def describe(self) -> str:
        return f"discriminator {sum(p.numel() for p in self.D.parameters()) / 1e6:.2f} M"

    def step(self, run, rows: torch.Tensor, lr_factor: float) -> dict[str, torch.Tensor]:
        cfg = run.cfg
        real = as_float(run.data[rows])
        loss_G = self.generator_step(run, lr_factor)
        if cfg.pl_weight > 0 and run.step % cfg.pl_every == 0:
            self.pl = self.path_length_step(run, lr_factor)
        metrics = {"loss_G": loss_G, **self.discriminator_step(run, real, lr_factor)}
        if run.step % cfg.r1_every == 0:
            self.r1 = self.r1_step(run, real, lr_factor)
        return {**metrics, "r1_penalty": self.r1, "pl_penalty": self.pl}

    # --- the phases ----------------------------------------------------------------------

    def styles(self, run, phase: str, batch: int) -> torch.Tensor:
        """This rank's w per layer (b, num_ws, w_dim) for a global batch of `batch` latents of the
        phase's stream: styles mixed at a random layer for a `style_mixing` share of them (so no
        layer can rely on one style)."""
        cfg, device, G = run.cfg, self.device, run.model
        gen = stream(cfg.seed, _LATENTS[phase], run.step, device=device)     # drawn where they are used: no copies
        z, z_mix = (torch.randn(batch, G.z_dim, generator=gen, device=device)[self.rows] for _ in range(2))
        num_ws = G.config.num_ws
        cutoff = torch.randint(1, max(2, num_ws), (batch,), generator=gen, device=device)[self.rows]
        mixed = torch.rand(batch, generator=gen, device=device)[self.rows] < cfg.style_mixing
        w = self.map_G(z)[:, None].expand(-1, num_ws, -1)                         # (b, num_ws, w_dim)
        if cfg.style_mixing > 0 and num_ws > 1:
            take_mix = (torch.arange(num_ws, device=device)[None] >= cutoff[:, None]) & mixed[:, None]
            w = torch.where(take_mix[..., None], self.map_G(z_mix)[:, None], w)
        return w

    def fake_images(self, run, phase: str) -> torch.Tensor:
        """This rank's images of the step's global batch for one phase ("generator" or
        "discriminator": each has its own latents, as in StyleGAN2's training loop)."""
        with self.autocast:
            return self.synthesize_G(self.styles(run, phase, run.cfg.batch_size)).float()

    def judge(self, run, images: torch.Tensor, phase: str, D: Optional[torch.nn.Module] = None,
              amp: bool = True) -> torch.Tensor:
        """D's logits for this rank's images, augmented with the step's `phase` stream (under
        bf16 autocast on CUDA unless amp=False)."""
        cfg = run.cfg
        augmented = diff_augment(images, cfg.augment, stream(cfg.seed, "augment", run.step, _PHASES[phase],
                                                             device=images.device),
                                 cfg.batch_size, self.rows)
        with self.autocast if amp else nullcontext():
            return (self.run_D if D is None else D)(augmented).float()

    def optimize(self, run, opt: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor, what: str,
                 lr_factor: float) -> torch.Tensor:
        """One optimizer step of `module` on `loss`, without a host sync: a step whose averaged
        gradients are not finite (the same on every rank) is skipped on the device, and the run
        stops at the next log or checkpoint. Returns this rank's loss, on the device."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(module, run.info)
        # One norm over every gradient (a foreach kernel), not a check per tensor: it is finite
        # exactly when each gradient is.
        finite = torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None],
                                                              foreach=True))
        bases = self.base_lrs["D" if opt is self.opt_D else "G"]
        skip_if_not_finite(run, opt, finite, [base * lr_factor for base in bases])
        opt.step()
        return loss.detach()

    def generator_step(self, run, lr_factor: float) -> torch.Tensor:
        self.D.requires_grad_(False)
        fake = self.fake_images(run, "generator")
        loss = F.softplus(-self.judge(run, fake, "generator")).mean()     # non-saturating: maximise log D(G(z))
        value = self.optimize(run, self.opt_G, run.model, loss, "generator", lr_factor)
        self.D.requires_grad_(True)
        return value

    def discriminator_step(self, run, real: torch.Tensor, lr_factor: float) -> dict[str, torch.Tensor]:
        """D against fresh fakes of the generator just updated (reusing the G step's images would
        show D the generator of one step ago), and against the real batch."""
        with torch.no_grad():
            fake = self.fake_images(run, "discriminator")
        fake_logits, real_logits = self.judge(run, fake, "fake"), self.judge(run, real, "real")
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        value = self.optimize(run, self.opt_D, self.D, loss, "discriminator", lr_factor)
        # D's confidence, as probabilities: 0.5 / 0.5 is chance; the gap is how well it tells them apart.
        p_real, p_fake = torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()
        return {"loss_D": value, "d_real": p_real, "d_fake": p_fake, "d_gap": p_real - p_fake}

    def path_length_step(self, run, lr_factor: float) -> torch.Tensor:
        """StyleGAN2's path-length regulariser: for y ~ N(0, I) / sqrt(pixels), the length of
        J_w^T y per image should stay at its running mean (a fixed-size step in w makes a
        fixed-size change in the image). pl_weight x (length - mean)^2, weighted by pl_every; in
        float32. The running mean follows the mean over all ranks, so N ranks equal 1 process."""
        cfg = run.cfg
        self.D.requires_grad_(False)
        batch = max(1, cfg.batch_size // cfg.pl_batch_shrink)
        w = self.styles(run, "path-length", batch)            # not detached: the penalty reaches the mapper too
        images = run.model.synthesize(w)
        noise = torch.randn(batch, *images.shape[1:], device=images.device,
                            generator=stream(cfg.seed, "gan-pl-noise", run.step, device=images.device))
        noise = noise[self.rows] / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), w, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()                    # (b,)
        batch_mean = distributed.mean_over_ranks(lengths.mean().detach(), run.info)
        self.pl_mean = self.pl_mean + cfg.pl_decay * (batch_mean - self.pl_mean)
        penalty = (lengths - self.pl_mean).square().mean()
        self.optimize(run, self.opt_G, run.model, penalty * cfg.pl_weight * cfg.pl_every, "path length", lr_factor)
        self.D.requires_grad_(True)
        return penalty.detach()

    def r1_step(self, run, real: torch.Tensor, lr_factor: float) -> torch.Tensor:
        """Lazy R1: gamma / 2 x E ||grad_x D(x)||^2 on reals, weighted by r1_every; in float32
        (a gradient norm squared in bf16 loses the small penalties it exists for)."""
        real = real.detach().requires_grad_(True)
        logits = self.judge(run, real, "r1", D=self.D, amp=False)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grad.square().sum(dim=(1, 2, 3)).mean()
        gamma = r1_gamma(run.cfg, real.shape[-1])
        self.optimize(run, self.opt_D, self.D, penalty * (gamma / 2) * run.cfg.r1_every, "R1", lr_factor)
        return penalty.detach()

    # --- what the trainer reads and saves ------------------------------------------------

    def log_extra(self) -> dict:
        return {"pl_mean": float(self.pl_mean)}

    def status(self, values: dict) -> list[str]:
        return [f"loss_G {values['loss_G']:.4f}", f"loss_D {values['loss_D']:.4f}",
                f"D(real) {values['d_real']:.3f} D(fake) {values['d_fake']:.3f}"]

    def weight_change(self) -> dict[str, float]:
        return {"discriminator": relative_change(zip(self.D.parameters(), self.initial_D))}

    def state_dict(self) -> dict:
        return {"D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "pl_mean": float(self.pl_mean)}

    def load_state_dict(self, saved: dict) -> None:
        self.D.load_state_dict(saved["D"])
        for opt, key in ((self.opt_G, "opt_G"), (self.opt_D, "opt_D")):
            opt.load_state_dict(saved[key])
            learning_rates_on_device(opt, self.device)
        self.pl_mean = torch.tensor(float(saved.get("pl_mean", 0.0)), device=self.device)

    def extra_files(self) -> dict[str, bytes]:
        weights = {k: v.detach().cpu().contiguous() for k, v in self.D.state_dict().items()}
        return {DISCRIMINATOR_FILE: safetensors_bytes(weights),
                DISCRIMINATOR_CONFIG_FILE: (json.dumps(dataclasses.asdict(self.D.config), indent=2) + "\n").encode()}
