"""--init-from: start a new run from a checkpoint's weights.

Two uses, one mechanism:
- a long run in stages: each stage starts from the last shipped checkpoint (run folders
  may not survive between working days; a checkpoint in the repository does);
- fine-tuning a shipped model on your own images.

What carries over is the model: its configuration (the flags may change fields that keep
the weights' shapes, such as --mapper.num-steps) and its weights, both the trained ones and
their EMA. What starts fresh is the optimizer (with the preset's warmup), the RS-IMLE
latents and the step count. The lineage (every earlier stage: checkpoint, steps, images
seen, wall time) goes into the new checkpoint's meta.json, so a model card can give the
whole budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from rtm_core import Generator, load_checkpoint
from rtm_core.checkpoint import CheckpointError, find_checkpoint
from rtm_core.config import ModelConfig

from .config import TrainConfig

TRAIN_STATE_FILE = "train_state.pt"
SHIPPED = "shipped"                   # --init-from shipped: the shipped model that fits the data
# The shipped models --init-from shipped may start from, tried in this order: the first whose image
# size and channels fit the data (and whose weights' shapes the flags keep) is taken.
SHIPPED_MODELS = ("noto-faces-rtm", "noto-faces-rtm-64")
# Names that train states written before the one trainer gave the adversarial generator.
OLD_STATE_NAMES = {"G": "model", "G_ema": "ema"}
# What one stage of a lineage records (keys of the parent's meta.json).
STAGE_KEYS = ("step", "images_seen", "wall_time_s", "cpu_time_s", "threads", "world_size", "data")


@dataclass
class Parent:
    """The checkpoint a run starts from."""

    config: ModelConfig
    weights: dict[str, torch.Tensor]      # the raw trained weights (the EMA's where the folder has no train state)
    ema: dict[str, torch.Tensor]
    lineage: list[dict]                   # every stage so far, oldest first, the parent last

    def describe(self) -> str:
        """'FOLDER: 64x64 images, 43,967 steps of training on data/noto-faces-64': what a log says of it."""
        decoder, last = self.config.decoder, self.lineage[-1]
        steps = sum(s.get("step") or 0 for s in self.lineage)
        return (f"{last['checkpoint']}: {decoder.img_resolution}x{decoder.img_resolution} images, {steps:,} steps "
                f"of training on {last.get('data') or 'unrecorded data'}")

    def meta(self, step: int, images_seen: int, wall_time_s: float) -> dict:
        """meta.json entries of a run at (step, images_seen, wall_time_s) of its own stage: the
        lineage and the budget summed over every stage."""
        stages = self.lineage + [{"step": step, "images_seen": images_seen, "wall_time_s": wall_time_s}]
        return {"init_from": self.lineage[-1]["checkpoint"], "lineage": self.lineage,
                "total_steps": sum(s.get("step") or 0 for s in stages),
                "total_images_seen": sum(s.get("images_seen") or 0 for s in stages),
                "total_wall_time_s": sum(s.get("wall_time_s") or 0.0 for s in stages),
                "stages": len(stages)}


def parent_of(cfg: TrainConfig, resolution: int, channels: int, num_images: int) -> tuple[Optional[Parent], str]:
    """The checkpoint a run starts from (None: a random initialisation), and one line for the log
    that says so. --init-from "shipped" (the quick preset's) means the shipped model that fits the
    data (its image size and channels, and the flags keep its weights' shapes): fine-tuning it gives
    new users far better models in minutes than starting from noise (docs/TRAINING.md). Where none
    fits, the run starts from scratch and says why. "" or "none": from scratch."""
    scratch = f"from scratch (a random initialisation, seed {cfg.seed})"
    if cfg.init_from in ("", "none"):
        why = ("as --init-from none asks" if cfg.init_from == "none"
               else "since no --init-from was given (--init-from shipped fine-tunes a shipped model where one fits)")
        return None, f"{scratch}, {why}; training on {num_images} images"
    if cfg.init_from != SHIPPED:
        parent = load_parent(cfg, resolution, channels)
        return parent, f"starting from {parent.describe()}, training on {num_images} images"
    misfits = []
    for name in SHIPPED_MODELS:
        try:
            parent = load_parent(cfg, resolution, channels, find_checkpoint(name))
        except (ValueError, CheckpointError) as e:
            misfits.append(str(e))
            continue
        return parent, f"starting from the shipped {name} ({parent.describe()}), fine-tuning it on your {num_images} images"
    return None, (f"{scratch}, because no shipped model fits {resolution}x{resolution} images with {channels} "
                  f"channel(s): " + "; ".join(misfits))


def load_parent(cfg: TrainConfig, resolution: int, channels: int, folder: Optional[Path] = None) -> Parent:
    """The checkpoint of --init-from (or `folder`), checked against the data and the flags before training."""
    folder = Path(folder or cfg.init_from)
    generator, meta = load_checkpoint(folder)       # header, hash and finiteness checks included
    base = generator.config
    try:
        config = base.replace(mapper=dict(cfg.mapper), decoder=dict(cfg.decoder))
    except (TypeError, ValueError) as e:
        raise ValueError(f"--init-from {folder}: the flags do not fit its model ({e})") from None
    if (config.decoder.img_resolution, config.decoder.img_channels) != (resolution, channels):
        raise ValueError(
            f"--init-from {folder}: the checkpoint makes {config.decoder.img_resolution}x"
            f"{config.decoder.img_resolution} images with {config.decoder.img_channels} channels, the data has "
            f"{resolution}x{resolution} with {channels}; prepare the data again with --resolution "
            f"{config.decoder.img_resolution}")
    shapes = _shapes(base)
    if _shapes(config) != shapes:
        changed = [f"{section}.{f.name}" for section in ("mapper", "decoder")
                   for f in dataclasses.fields(getattr(base, section))
                   if getattr(getattr(base, section), f.name) != getattr(getattr(config, section), f.name)]
        raise ValueError(f"--init-from {folder}: these settings change the shapes of its weights ({', '.join(changed)}); "
                         f"drop those --mapper./--decoder. flags, or a --preset that sets them "
                         f"(the checkpoint's own model is used)")
    ema = generator.state_dict()
    raw = raw_weights(folder)   # a run's checkpoint/: its raw weights go on training, not their average
    weights = raw if raw is not None else ema
    stage = {"checkpoint": str(folder), **{k: meta.get(k) for k in STAGE_KEYS}}
    return Parent(config=config, weights=weights, ema=ema, lineage=list(meta.get("lineage", [])) + [stage])


def read_state_file(path: Path) -> dict:
    """A train_state.pt, on the host (never map_location=device: the saved random states must stay
    CPU ByteTensors, which torch.set_rng_state needs), its generator under today's names."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return {OLD_STATE_NAMES.get(k, k): v for k, v in saved.items()}


def raw_weights(folder: Path) -> Optional[dict[str, torch.Tensor]]:
    """The raw (non-EMA) generator weights in a run checkpoint's train_state.pt, or None where the
    folder has none (a shipped folder holds only the EMA)."""
    state_file = Path(folder) / TRAIN_STATE_FILE
    return read_state_file(state_file).get("model") if state_file.is_file() else None


def _shapes(config: ModelConfig) -> dict[str, tuple]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Generator(config).state_dict().items()}
