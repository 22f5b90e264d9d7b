"""Training configuration: one frozen dataclass, presets, and CLI flags made from its fields."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from rtm_core.config import ModelConfig, app_default, parse_block_spec, tiny


@dataclass(frozen=True)
class TrainConfig:
    # --- what to train on, where to write ---------------------------------------------
    data: str = ""                  # prepared dataset folder (python -m train.data ...)
    out: str = "runs/rtm"           # run folder: checkpoint/, samples/, metrics.jsonl
    resume: bool = False            # continue from out/checkpoint/ exactly where it stopped
    seed: int = 0                   # seeds the model init, the IMLE pools and the data order
    # --- the model (resolution and channels come from the data) ------------------------
    model: str = "app"              # "app" (64x64-class, rtm_core.app_default) | "tiny" (tests)
    mapper: str = "rtm"             # "rtm" | "mlp": the only difference between the two arms
    decoder: str = "stylegan2"      # "stylegan2" | "imle"
    num_steps: int = 0              # RTM's H; 0 = the preset's (8)
    num_cycles: int = 0             # RTM's L; 0 = the preset's (2)
    channel_base: int = 0           # decoder width knob; 0 = the preset's
    # --- optimisation --------------------------------------------------------------------
    batch_size: int = 32            # images per optimizer step, summed over all ranks
    lr: float = 2e-4                # AdamW learning rate after warmup
    weight_decay: float = 0.0       # AdamW weight decay
    warmup_steps: int = 200         # linear LR warmup; constant afterwards
    grad_clip: float = 1.0          # max global gradient norm; 0 = no clipping
    ema_decay: float = 0.999        # EMA of weights used for samples and the checkpoint
    perceptual: float = 0.0         # weight of an EfficientNet-Lite0 feature loss added to pixel L2; 0 = off
    perceptual_size: int = 64       # images are resized to this for that loss (224 is 12x the cost)
    max_steps: int = 10_000         # optimizer steps in total (a resumed run counts from 0)
    max_minutes: float = 0.0        # also stop after this much wall time; 0 = no limit
    # --- RS-IMLE -------------------------------------------------------------------------
    force_factor: int = 20          # pool size = force_factor x dataset size
    resample_every: int = 30        # epochs between re-selections of the latents
    eps: float = 0.12               # rejection radius in the search space
    search_dim: int = 800           # dimension of the random projection used for matching
    latent_noise: float = 0.001     # std of the noise added to each matched latent
    pool_batch: int = 64            # images generated per batch while building the pool (CPU caches like small ones)
    # --- hardware ------------------------------------------------------------------------
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    amp: bool = True                # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False           # torch.compile the generator (CUDA; slow first step)
    # --- logging -------------------------------------------------------------------------
    log_every: int = 25             # steps between metrics.jsonl lines
    sample_every: int = 500         # steps between refinement grids in samples/; 0 = only at the end
    checkpoint_every: int = 500     # steps between checkpoints; the last step is always saved
    preview_seeds: int = 8          # rows of the refinement grid (fixed seeds 0..n-1)
    progress: bool = True           # tqdm progress bar on rank 0

    def __post_init__(self) -> None:
        checks = {
            "model": self.model in ("app", "tiny"), "mapper": self.mapper in ("rtm", "mlp"),
            "decoder": self.decoder in ("stylegan2", "imle"), "device": self.device in ("auto", "cpu", "cuda"),
            "batch_size": self.batch_size >= 1, "lr": self.lr > 0, "max_steps": self.max_steps >= 1,
            "force_factor": self.force_factor >= 1, "resample_every": self.resample_every >= 1,
            "eps": self.eps >= 0, "search_dim": self.search_dim >= 1, "ema_decay": 0 <= self.ema_decay < 1,
            "num_steps": self.num_steps >= 0, "num_cycles": self.num_cycles >= 0, "warmup_steps": self.warmup_steps >= 0,
            "log_every": self.log_every >= 1, "checkpoint_every": self.checkpoint_every >= 1,
            "sample_every": self.sample_every >= 0, "grad_clip": self.grad_clip >= 0, "pool_batch": self.pool_batch >= 1,
            "perceptual": self.perceptual >= 0, "perceptual_size": self.perceptual_size >= 32,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training settings: " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad))

    def model_config(self, resolution: int, channels: int) -> ModelConfig:
        base = tiny(self.mapper, self.decoder) if self.model == "tiny" else app_default(self.mapper, self.decoder)
        mapper = {k: v for k, v in (("num_steps", self.num_steps), ("num_cycles", self.num_cycles)) if v}
        decoder: dict[str, Any] = {"img_resolution": resolution, "img_channels": channels,
                                   "block_spec": imle_block_spec(resolution, parse_block_spec(base.decoder.block_spec)[0][2])}
        if self.channel_base:
            decoder["channel_base"] = self.channel_base
        return base.replace(mapper=mapper, decoder=decoder)


def imle_block_spec(resolution: int, blocks: int) -> str:
    """'1xB,4m1,4xB,8m4,8xB,...' up to `resolution`: B residual blocks at every resolution."""
    entries, res = [f"1x{blocks}", "4m1", f"4x{blocks}"], 4
    while res < resolution:
        entries += [f"{res * 2}m{res}", f"{res * 2}x{blocks}"]
        res *= 2
    return ",".join(entries)


# Presets set only what differs from the defaults; flags given on the command line win.
PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: for tests and smoke runs.
    "tiny": dict(model="tiny", batch_size=16, max_steps=30, warmup_steps=5, force_factor=2, resample_every=2,
                 search_dim=64, log_every=5, sample_every=0, checkpoint_every=10, preview_seeds=4,
                 pool_batch=128, ema_decay=0.9),
    # This 2-core CPU, <= 60 minutes: 32x32 emoji with a slimmer decoder (docs/TRAINING.md says why).
    "cpu": dict(channel_base=1024, batch_size=32, lr=5e-4, max_steps=12_000, max_minutes=58, warmup_steps=200,
                force_factor=4, resample_every=10, log_every=50, sample_every=1000, checkpoint_every=1000,
                ema_decay=0.995),
    # One GPU, 64x64: the paper's RS-IMLE settings.
    "gpu": dict(batch_size=64, lr=2e-4, max_steps=50_000, force_factor=20, resample_every=30,
                sample_every=2000, checkpoint_every=2000, compile=True),
}


def _flag_type(field: dataclasses.Field):
    if field.type in ("bool", bool):
        return None
    return {"int": int, "float": float, "str": str}.get(str(field.type), str)


def parse_args(argv: Optional[Iterable[str]] = None) -> TrainConfig:
    """CLI flags generated from TrainConfig's fields; `--preset` fills in defaults first."""
    parser = argparse.ArgumentParser(prog="python -m train.train", description="RS-IMLE training of RTM.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="start from these settings")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if _flag_type(field) is None:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=_flag_type(field), default=None, help=f"(default {field.default!r})")
    args = vars(parser.parse_args(list(argv) if argv is not None else None))
    settings = dict(PRESETS.get(args.pop("preset") or "", {}))
    settings.update({k: v for k, v in args.items() if v is not None})
    try:
        return TrainConfig(**settings)
    except ValueError as e:
        parser.error(str(e))
