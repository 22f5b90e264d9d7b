"""RS-IMLE (Vashist et al. 2024): every `resample_every` epochs, each training image gets the
nearest surviving latent of a fresh pool of generated samples (train/imle.py); between two such
rounds the generator learns to map each image's latent onto it, with a perceptual distance and
pixel L2 (train/losses.py), AdamW and gradient clipping.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import TrainConfig
from ..imle import RandomProjection, Selection, embed_in_batches, nearest_neighbour_distances, quantiles, reselect
from ..losses import ImageLoss
from ..run import as_float, learning_rates_on_device, skip_if_not_finite
from .base import Objective


CACHE_BYTES = 1 << 30      # the training images' perceptual features are kept on the device up to this size


def resample_interval(cfg: TrainConfig, num_images: int) -> int:
    """Optimizer steps between two RS-IMLE rounds: every `resample_every` epochs counted in images
    (the same images between rounds at any batch size), but at least `resample_min_steps`, so
    that a large batch on few images still takes some steps towards its targets before they move."""
    return max(1, cfg.resample_min_steps, round(cfg.resample_every * num_images / cfg.batch_size))


class GeneratorLoss(torch.nn.Module):
    """The generator's images for the latents (bf16 autocast on CUDA) and their loss against the
    real images: the part of a step that --compile turns into one graph."""

    def __init__(self, generator: torch.nn.Module, image_loss: ImageLoss, bf16: bool, cast_cache: bool = True):
        super().__init__()
        self.generator, self.image_loss, self.bf16, self.cast_cache = generator, image_loss, bf16, cast_cache

    def forward(self, latents: torch.Tensor, real: torch.Tensor,
                real_features: Optional[list[torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        # The context made here, not kept on the module: torch.compile traces it into the graph.
        # Captured in a CUDA graph (--cuda-graph), autocast keeps no cache of its casts of the
        # weights (make_graphed_callables refuses one): the casts are recorded and run at every replay.
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=self.cast_cache) if self.bf16 else nullcontext():
            fake = self.generator(latents)
        return self.image_loss(fake, real, real_features)


class RSIMLE(Objective):
    name = "imle"
    averaged = ("loss",)

    def __init__(self, run):
        cfg, device, model = run.cfg, run.info.device, run.model
        self.device = device
        # Fused AdamW (one kernel for every tensor, on a GPU and on a CPU), its learning rates
        # 0-d tensors on the device so that a step never waits for the host.
        self.base_lrs = [cfg.lr * cfg.mapping_lr_scale, cfg.lr * cfg.synthesis_lr_scale]
        self.opt = torch.optim.AdamW([{"params": model.mapping.parameters(), "lr": torch.tensor(cfg.lr, device=device)},
                                      {"params": model.synthesis.parameters(), "lr": torch.tensor(cfg.lr, device=device)}],
                                     lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
                                     fused=True, capturable=cfg.cuda_graph and device.type == "cuda")
        self.optimizers = [self.opt]
        # One device per process (device_ids), and no buffer broadcast before every forward: the
        # generator's buffers (the fixed initial states, the noise scales' constants) never change.
        train_model = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                               broadcast_buffers=False) if run.info.enabled else model)
        self.forward_loss = GeneratorLoss(train_model, ImageLoss(cfg.loss_perceptual, cfg.loss_pixel, cfg.perceptual_size,
                                                                     cfg.perceptual_weights),
                                          bf16=cfg.amp and device.type == "cuda",
                                          cast_cache=not (cfg.cuda_graph and device.type == "cuda")).to(device)
        self.real_features = self.perceptual_features(run.data)
        self.pool_model = model
        if cfg.compile:
            # Two graphs: the generator with its loss (one region: the perceptual network's kernels
            # fuse with the generator's) and the pool's generation (no grad).
            self.forward_loss, self.pool_model = torch.compile(self.forward_loss), torch.compile(model)

        N = run.data.shape[0]
        self.project = RandomProjection(run.data[0].numel(), cfg.search_dim, seed=cfg.seed, device=device)
        self.data_features = embed_in_batches(lambda x: self.project(as_float(x)), run.data, 1024)
        data_nn = nearest_neighbour_distances(self.data_features)
        self.eps = cfg.eps_nn_fraction * float(data_nn.median()) if cfg.eps_nn_fraction > 0 else cfg.eps
        self.resample_steps = resample_interval(cfg, N)
        self.latents: torch.Tensor | None = None
        self.latents_step = -1                  # the step whose round selected the latents
        self.rounds: list[tuple[int, Selection]] = []   # rounds whose figures the log has yet to read
        # The search space's own scale, so that eps can be read against it.
        self.search_space = {"event": "search_space", "eps": self.eps, "data_nn_distance": quantiles(data_nn)}

    @torch.no_grad()
    def perceptual_features(self, data: torch.Tensor) -> Optional[list[torch.Tensor]]:
        """The training images' features for the perceptual distance, computed once: they never
        change, and recomputing them is part of every step's cost. Kept on the device when they
        take at most CACHE_BYTES (about 9,000 images at 64 px); else each step computes its own."""
        perceptual = self.forward_loss.image_loss.perceptual
        if perceptual is None:
            return None
        probe = perceptual.features(as_float(data[:1]))
        if sum(t.numel() * t.element_size() for t in probe) * len(data) > CACHE_BYTES:
            return None
        chunks = [perceptual.features(as_float(chunk)) for chunk in data.split(256)]
        return [torch.cat(taps) for taps in zip(*chunks)]

    def describe(self) -> str:
        return f"re-selection every {self.resample_steps} steps"

    def opening_records(self) -> list[dict]:
        return [self.search_space]

    def before_step(self, run, clock) -> None:
        if self.latents is None or (run.step % self.resample_steps == 0 and self.latents_step != run.step):
            with clock.aside("selection", every=self.resample_steps):
                self.select_latents(run)

    def select_latents(self, run) -> Selection:
        """One RS-IMLE round: every image gets the nearest surviving latent of a fresh pool. Its
        figures are read at the next log step (records): reading them now would make a GPU's
        host wait for the round."""
        cfg = run.cfg
        selection = reselect(self.pool_model, self.data_features, self.project, z_dim=run.model.z_dim, seed=cfg.seed,
                             round_=run.step // self.resample_steps, force_factor=cfg.force_factor, eps=self.eps,
                             latent_noise=cfg.latent_noise, pool_batch=cfg.pool_batch, info=run.info,
                             pool_multiple=cfg.pool_multiple, knn_ignore=cfg.knn_ignore if cfg.rejection == "knn" else 0,
                             bf16=cfg.amp and run.info.device.type == "cuda")
        if self.latents is None or self.latents.shape != selection.latents.shape:
            self.latents = selection.latents
        else:   # in place: a captured step (--cuda-graph) reads the latents where they were
            self.latents.copy_(selection.latents)
        self.latents_step = run.step
        self.rounds.append((run.step, dataclasses.replace(selection, latents=None)))   # its figures, not its latents
        return selection

    def records(self, run) -> list[dict]:
        rounds, self.rounds = self.rounds, []
        return [{"event": "reselect", "step": step, "epoch": step * run.cfg.batch_size / run.data.shape[0],
                 "eps": self.eps, **selection.summary()} for step, selection in rounds]

    def step(self, run, rows: torch.Tensor, lr_factor) -> dict[str, torch.Tensor]:
        """One AdamW step on images `rows` and their selected latents; lr_factor a number, or a
        0-d tensor on the device when the step is captured (--cuda-graph)."""
        real_features = [f[rows] for f in self.real_features] if self.real_features is not None else None
        losses = self.forward_loss(self.latents[rows], as_float(run.data[rows]), real_features)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip or float("inf"), foreach=True)
        # The gradients' norm alone: the same on every rank after DDP's averaging, so every rank
        # skips the same steps (a loss that is not finite makes it so too).
        finite = torch.isfinite(grad_norm)
        skip_if_not_finite(run, self.opt, finite, [base * lr_factor for base in self.base_lrs])
        self.opt.step()
        return {**{k: v.detach() for k, v in losses.items()}, "grad_norm": grad_norm.detach()}

    def status(self, values: dict) -> list[str]:
        return [f"loss {values['loss']:.4f}"] + [f"{k} {values[k]:.4f}" for k in ("pixel", "perceptual") if k in values]

    def state_dict(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "latents_step": self.latents_step,
                "latents": self.latents.cpu() if self.latents is not None else None}

    def load_state_dict(self, saved: dict) -> None:
        self.opt.load_state_dict(saved["optimizer"])    # its state follows the parameters' device
        learning_rates_on_device(self.opt, self.device)
        self.latents_step = saved.get("latents_step", -1)
        self.latents = saved["latents"].to(self.device) if saved.get("latents") is not None else None
