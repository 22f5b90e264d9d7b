"""2-D maps of latent trajectories: a reference cloud fitted offline, new paths placed into it.

The reference cloud is w at every step 0..H for a few thousand fixed seeds. UMAP is fitted
on it once, offline (it needs numba and takes a minute), by `python -m train.ship --full` or

    python -m app.projection --checkpoint checkpoints/noto-faces-rtm --seeds 1000

which write `projection.npz` (plain arrays, read with allow_pickle=False) next to the
checkpoint. At run time a new trajectory is placed *from its neighbours*: each w lands at
the distance-weighted mean of the 2-D positions of its k nearest reference points. That
needs no numba, so the app starts at once. Without a projection file the app falls back
to PCA of a small reference cloud computed at start-up.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from rtm_core import Generator
# torch and rtm_core are imported where they are used, so that --help answers at once.

PROJECTION_FILE = "projection.npz"
METHODS = ("umap", "pca")


@dataclass(frozen=True)
class Projection:
    method: str              # "umap" | "pca"
    ref_ws: np.ndarray       # (M, w_dim) float32: the reference cloud
    ref_xy: np.ndarray       # (M, 2) float32: its 2-D embedding
    ref_steps: np.ndarray    # (M,) int: the step each reference point was taken at
    mean: np.ndarray         # (w_dim,) PCA only: the centre
    axes: np.ndarray         # (2, w_dim) PCA only: the two principal axes
    k: int = 8

    @functools.cached_property
    def span(self) -> float:
        """The reference cloud's larger side on the map: what the page's map shows, about."""
        return float(np.ptp(self.ref_xy, axis=0).max()) if len(self.ref_xy) else 1.0

    @functools.cached_property
    def _ref_sq(self) -> np.ndarray:
        """|ref_w|^2, computed once: every trajectory is placed against the same cloud."""
        return (self.ref_ws * self.ref_ws).sum(1)

    def place(self, ws: np.ndarray) -> np.ndarray:
        """(S, w_dim) -> (S, 2)."""
        ws = np.asarray(ws, dtype=np.float32)
        if self.method == "pca":
            return (ws - self.mean) @ self.axes.T
        d2 = (ws * ws).sum(1)[:, None] + self._ref_sq[None, :] - 2.0 * ws @ self.ref_ws.T
        d = np.sqrt(np.maximum(d2, 0.0))                                 # (S, M)
        k = min(self.k, len(self.ref_ws))
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]              # (S, k)
        nd = np.take_along_axis(d, nearest, axis=1)
        weights = 1.0 / np.maximum(nd, 1e-6) ** 2
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("sk,skd->sd", weights, self.ref_xy[nearest]).astype(np.float32)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / PROJECTION_FILE
        np.savez_compressed(path, method=np.array(self.method), ref_ws=self.ref_ws.astype(np.float16),
                            ref_xy=self.ref_xy, ref_steps=self.ref_steps.astype(np.int16), mean=self.mean,
                            axes=self.axes)
        return path


def load_projection(folder: str | os.PathLike) -> Optional[Projection]:
    """The projection saved next to a checkpoint, or None if there is none."""
    path = Path(folder) / PROJECTION_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        return Projection(method=str(f["method"]), ref_ws=f["ref_ws"].astype(np.float32),
                          ref_xy=f["ref_xy"].astype(np.float32), ref_steps=f["ref_steps"].astype(np.int64),
                          mean=f["mean"].astype(np.float32), axes=f["axes"].astype(np.float32))


def reference_cloud(generator: "Generator", num_seeds: int, first_seed: int = 10_000_000,
                    batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """w at steps 0..H for seeds first_seed, first_seed+1, ...: (M, w_dim) and their steps (M,).

    The reference seeds start far above the seeds people type, so a user's seed 0..9,999,999
    is never part of the cloud it is compared with.
    """
    from rtm_core import seeds_to_z, trajectory

    H = generator.num_steps
    ws, steps = [], []
    for start in range(0, num_seeds, batch):
        seeds = list(range(first_seed + start, first_seed + min(num_seeds, start + batch)))
        tr = trajectory(generator, seeds_to_z(seeds, generator.z_dim), H, decode=False).ws  # (H+1, B, w_dim)
        ws.append(tr.permute(1, 0, 2).reshape(-1, tr.shape[-1]).cpu().numpy())
        steps.append(np.tile(np.arange(H + 1), len(seeds)))
    return np.concatenate(ws).astype(np.float32), np.concatenate(steps)


def fit_pca(ref_ws: np.ndarray, ref_steps: np.ndarray) -> Projection:
    mean = ref_ws.mean(axis=0)
    _, _, vt = np.linalg.svd(ref_ws - mean, full_matrices=False)
    axes = vt[:2].astype(np.float32)
    return Projection(method="pca", ref_ws=ref_ws, ref_xy=((ref_ws - mean) @ axes.T).astype(np.float32),
                      ref_steps=ref_steps, mean=mean.astype(np.float32), axes=axes)


def fit_umap(ref_ws: np.ndarray, ref_steps: np.ndarray, seed: int = 0) -> Projection:
    import umap  # offline only: importing umap compiles numba code

    # RTM's step 0 is the same w for every seed (the fixed start): fit on distinct points only,
    # or UMAP scatters a thousand copies of one point across the map.
    unique, inverse = np.unique(ref_ws, axis=0, return_inverse=True)
    xy = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(unique)[inverse.ravel()]
    w_dim = ref_ws.shape[1]
    return Projection(method="umap", ref_ws=ref_ws, ref_xy=xy.astype(np.float32), ref_steps=ref_steps,
                      mean=np.zeros(w_dim, np.float32), axes=np.zeros((2, w_dim), np.float32))


def make_projection(folder: str | os.PathLike, seeds: int, method: str) -> tuple[Path, int]:
    """Fit the map of a checkpoint folder on `seeds` reference seeds and save projection.npz
    into it; returns (its path, the number of reference points)."""
    import torch

    from rtm_core import load_checkpoint

    torch.manual_seed(0)
    generator, _ = load_checkpoint(folder)
    ref_ws, ref_steps = reference_cloud(generator, seeds)
    projection = fit_umap(ref_ws, ref_steps) if method == "umap" else fit_pca(ref_ws, ref_steps)
    return projection.save(folder), len(ref_ws)
