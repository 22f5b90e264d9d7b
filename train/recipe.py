"""The recipe from the data: what 0 means in --batch-size, --lr, --force-factor and
--perceptual-size (the `gpu` preset's values), decided once the dataset's size and resolution
and the device are known.

The rule, and the evidence for it (docs/TRAINING.md, "A recipe counted in images"):
- batch: 16 on a CPU (cache-friendly: bench_train); on a GPU the power of two nearest N / 2,
  16 to 256, so that one step is about half an epoch of a small set and a large set fills the
  device;
- learning rate: 1e-3 x sqrt(batch / 16), the square-root rule through the best rates measured at
  equal images on this project's faces (scripts/run_batch_lr_study.sh, docs/TRAINING.md): at
  batch 16, 1e-3 beat the `cpu` preset's 5e-4; at batch 64, 2e-3 beat 1e-3, 5e-4 and 2e-4. Above
  64 it is not measured (103 images cannot fill such batches without repeats);
- pool: 20 candidates per image (RS-IMLE's force factor), fewer for large sets so that a round
  stays within MAX_POOL samples, never fewer than 2 (at 20x a round's forward passes cost about a
  third of the training between two rounds; capped, 10^5 images spend ~4 % on them);
- perceptual distance at the data's resolution, 32 to 128 px (the 64x64 stages use it at full
  size; above 128 px the feature network's cost grows faster than what it sees). Not measured.
Schedules are counted in images (config.py), so none of them changes with the batch.
"""

from __future__ import annotations

import dataclasses
import math

from .config import TrainConfig

REFERENCE_BATCH, REFERENCE_LR = 16, 1e-3   # the best rate measured at batch 16
CPU_BATCH, GPU_BATCH_RANGE = 16, (16, 256)
FORCE_FACTOR, MAX_POOL = 20, 2 ** 18
PERCEPTUAL_RANGE = (32, 128)


def batch_for(num_images: int, device_type: str, world_size: int = 1) -> int:
    if device_type != "cuda":
        batch = CPU_BATCH
    else:
        low, high = GPU_BATCH_RANGE
        batch = min(high, max(low, 2 ** round(math.log2(max(1, num_images) / 2))))
    return -(-batch // world_size) * world_size      # every process gets the same share


def lr_for(batch: int) -> float:
    return REFERENCE_LR * math.sqrt(batch / REFERENCE_BATCH)


def force_factor_for(num_images: int) -> int:
    return max(2, min(FORCE_FACTOR, MAX_POOL // max(1, num_images)))


def perceptual_size_for(resolution: int) -> int:
    low, high = PERCEPTUAL_RANGE
    return min(high, max(low, resolution))


def from_data(cfg: TrainConfig, num_images: int, resolution: int, device_type: str,
              world_size: int = 1) -> tuple[TrainConfig, list[str]]:
    """cfg with every 0 among batch_size, lr, force_factor and perceptual_size decided by the rule,
    and one line per decision for the log. Settings given (not 0) are kept as they are."""
    changes: dict = {}
    if cfg.batch_size == 0:
        changes["batch_size"] = batch_for(num_images, device_type, world_size)
    if cfg.lr == 0:
        changes["lr"] = lr_for(changes.get("batch_size", cfg.batch_size))
    if cfg.force_factor == 0:
        changes["force_factor"] = force_factor_for(num_images)
    if cfg.perceptual_size == 0:
        changes["perceptual_size"] = perceptual_size_for(resolution)
    if not changes:
        return cfg, []
    said = {"batch_size": "batch", "lr": "lr", "force_factor": "pool x images", "perceptual_size": "perceptual px"}
    line = (f"recipe from the data ({num_images} images of {resolution} px on {device_type}): "
            + ", ".join(f"{said[k]} {v:g}" for k, v in changes.items()) + " (train/recipe.py)")
    return dataclasses.replace(cfg, **changes), [line]
