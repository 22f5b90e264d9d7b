"""Memorisation check: the training images nearest to a generated frame.

    python -m train.ship --checkpoint checkpoints/noto-faces-rtm --data data/noto-faces-32

stores the training images (uint8, compressed, at the model's resolution) next to the
checkpoint as `training_images.npz`; the app then shows, for the final frame of every
trajectory, the three training images closest in pixel space (L2). A generator that
memorises its data shows near-copies here.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from rtm_core.checkpoint import TRAINING_IMAGES_FILE


@dataclass(frozen=True)
class TrainingImages:
    images: np.ndarray            # (N, R, R, C) uint8
    labels: np.ndarray            # (N,) str: the text or file of each image, for tooltips

    @functools.cached_property
    def _flat(self) -> np.ndarray:
        """(N, R*R*C) float32, made once: every request compares against it."""
        return self.images.reshape(len(self.images), -1).astype(np.float32)

    def nearest(self, frame: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        """Indices and RMS pixel distances (0..255 scale) of the k training images nearest to `frame`."""
        d = np.sqrt(((self._flat - frame.reshape(1, -1).astype(np.float32)) ** 2).mean(axis=1))
        order = np.argsort(d)[:k]
        return [(int(i), float(d[i])) for i in order]


    def nearest_indices(self, frames: np.ndarray) -> np.ndarray:
        """(F,) the index of the training image nearest to each of `frames` (F, R, R, C), in one
        matrix product (|a - b|^2 = |a|^2 - 2 a.b + |b|^2; |a|^2 does not change the argmin)."""
        flat = frames.reshape(len(frames), -1).astype(np.float32)
        return np.argmin(self._sq[None, :] - 2 * flat @ self._flat.T, axis=1)

    @functools.cached_property
    def _sq(self) -> np.ndarray:
        """(N,) |image|^2, made once."""
        return (self._flat ** 2).sum(axis=1)


def load_training_images(folder: str | os.PathLike) -> Optional[TrainingImages]:
    path = Path(folder) / TRAINING_IMAGES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        return TrainingImages(images=f["images"], labels=f["labels"])


def describe_label(label: Any) -> str:
    """A training image's label as plain text: an emoji gets its Unicode name ('😀 grinning face')."""
    text = str(label)[:64]
    names = [unicodedata.name(c, "").lower() for c in text if unicodedata.category(c) == "So"]
    names = [n for n in names if n]
    return f"{text} {' + '.join(names)}" if names and len(text) <= 8 else text
