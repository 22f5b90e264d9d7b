"""RS-IMLE selection: match every training image to its nearest acceptable generated sample.

IMLE trains a generator so that every data point has a sample close to it (mode
coverage). RS-IMLE (Vashist et al., ECCV 2024) adds rejection sampling: pool samples that
already lie within `eps` of a data point are discarded before matching, so each image is
pulled towards a sample that is not yet a copy of some image. Two rules (TrainConfig.rejection):
"any" drops every sample within eps of any data point (the paper's rule); "knn" is what
RS-IMLE's code does: in each block of 1,024 pool samples, each data point drops only its
`knn_ignore` (5) nearest samples that fall within eps, so a 6th sample within eps survives.

Everything here is a pure function of its inputs, chunked so that memory stays bounded
(the pool is generated, searched and dropped one block of 4,096 samples at a time; a block's
distances to the data are kept up to KEEP_BYTES, else computed a chunk x chunk block at a
time) for datasets of 100,000 images.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .device_clock import DeviceClock
from .distributed import DistInfo, all_gather


class RandomProjection:
    """The search space: a fixed random projection of the pixels, L2-normalised.

    Fixed by its seed, so every rank (and a resumed run) builds the same space.
    """

    def __init__(self, in_features: int, dim: int = 800, seed: int = 0, device: str | torch.device = "cpu"):
        g = torch.Generator().manual_seed(seed)
        self.matrix = (torch.randn(in_features, dim, generator=g) / dim ** 0.5).to(device)  # (D, dim)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, R, R) in [-1, 1] -> (B, dim), unit norm."""
        return F.normalize(images.flatten(1).float() @ self.matrix, dim=1)


@torch.no_grad()
def embed_in_batches(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                     batch_size: int) -> torch.Tensor:
    return torch.cat([fn(chunk) for chunk in inputs.split(batch_size)])


def quantiles(values: torch.Tensor, qs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[str, float]:
    """{'p5': ..., 'p50': ..., ...} of a 1-d tensor, for logs; {} when it is empty."""
    values = values.float().flatten().cpu()
    if values.numel() == 0:
        return {}
    return {f"p{round(100 * q)}": float(v) for q, v in zip(qs, torch.quantile(values, torch.tensor(qs)))}


@torch.no_grad()
def nearest_neighbour_distances(features: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(N, d) -> (N,): each row's distance to the nearest *other* row. The data's own scale,
    against which the rejection radius eps is set (TrainConfig.eps_nn_fraction)."""
    if features.shape[0] < 2:
        raise ValueError("nearest-neighbour distances need at least two images")
    out = []
    for n0 in range(0, features.shape[0], chunk):
        d = _distances(features[n0:n0 + chunk], features)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + n0] = float("inf")                          # not itself
        out.append(d.min(dim=1).values)
    return torch.cat(out)


@dataclass(frozen=True)
class Matches:
    index: torch.Tensor       # (N,) long: for each data point, the chosen pool sample (-1 if none survived)
    distance: torch.Tensor    # (N,) float: its distance (inf if none survived)
    rejected: torch.Tensor    # (P,) bool: pool samples rejected (within eps of a data point, by the rule)
    pool_nearest: torch.Tensor  # (P,) float: each pool sample's distance to its nearest data point


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between rows, (n, d) x (m, d) -> (n, m)."""
    return torch.cdist(a.float(), b.float())


KNN_BLOCK = 1024  # RS-IMLE's imle_db_size: the "knn" rule rejects per block of this many pool samples
# A pool block's distances to all the data are kept between the two passes up to this size:
# N <= 16,384 at blocks of 4,096 on a CPU; on a GPU N <= 131,072 (65,536 x 4 at the knn rule's 1,024).
KEEP_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}


@torch.no_grad()
def select_nearest(data: torch.Tensor, pool: torch.Tensor, eps: float, chunk: int = 4096,
                   knn_ignore: int = 0) -> Matches:
    """For every data feature, the nearest pool feature that was not rejected.

    data (N, d) and pool (P, d) are features in the search space. Rejected: within eps of
    any data point (knn_ignore = 0), or, RS-IMLE's code (knn_ignore > 0), among some data
    point's knn_ignore nearest samples of its block of KNN_BLOCK and within eps of it.

    The pool is searched a block at a time (`chunk` samples; KNN_BLOCK for the knn rule, whose
    blocks must be whole). A first pass over the data decides which of the block's samples
    are rejected; a second finds each data point's nearest survivor in the block. The second
    pass reuses the first's distances while the block's distances to all the data take at
    most KEEP_BYTES (a CPU: N <= 16,384 at blocks of 4,096, 65,536 at 1,024; a GPU: 8 x as
    many); beyond, it computes them again: twice the search, with memory one chunk x chunk
    block. No decision depends on a value read
    back from the device, so on a GPU the search never makes the host wait.
    """
    if data.ndim != 2 or pool.ndim != 2 or data.shape[1] != pool.shape[1]:
        raise ValueError(f"data and pool must be (N, d) and (P, d) with the same d, "
                         f"got {tuple(data.shape)} and {tuple(pool.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    N, P = data.shape[0], pool.shape[0]
    pool_min = torch.full((P,), float("inf"), device=pool.device)
    rejected = torch.zeros(P, dtype=torch.bool, device=pool.device)
    distance = torch.full((N,), float("inf"), device=data.device)
    index = torch.full((N,), -1, dtype=torch.long, device=data.device)
    data_chunks = data.split(chunk)
    for p0 in range(0, P, KNN_BLOCK if knn_ignore else chunk):
        block = pool[p0:p0 + (KNN_BLOCK if knn_ignore else chunk)]
        p1 = p0 + len(block)
        keep = N * len(block) * 4 <= KEEP_BYTES.get(pool.device.type, KEEP_BYTES["cpu"])
        kept = []
        hits = torch.zeros(len(block), dtype=torch.int32, device=pool.device)   # knn rule: rejections per sample
        for rows in data_chunks:
            d = _distances(rows, block)                                           # (n, p)
            if keep:
                kept.append(d)
            pool_min[p0:p1] = torch.minimum(pool_min[p0:p1], d.min(dim=0).values)
            if knn_ignore:
                near_d, near_i = d.topk(min(knn_ignore, d.shape[1]), dim=1, largest=False)
                hits.index_add_(0, near_i.flatten(), (near_d < eps).flatten().to(hits.dtype))
        rejected[p0:p1] = hits > 0 if knn_ignore else pool_min[p0:p1] < eps
        for i, (n0, rows) in enumerate(zip(range(0, N, chunk), data_chunks)):
            d = kept[i] if keep else _distances(rows, block)
            best_d, best_i = d.masked_fill(rejected[p0:p1], float("inf")).min(dim=1)
            better = best_d < distance[n0:n0 + chunk]       # strictly: the first of equals wins, as argmin's
            distance[n0:n0 + chunk] = torch.where(better, best_d, distance[n0:n0 + chunk])
            index[n0:n0 + chunk] = torch.where(better, best_i + p0, index[n0:n0 + chunk])
    return Matches(index=index, distance=distance, rejected=rejected, pool_nearest=pool_min)


@torch.inference_mode()
def generate_pool_features(generator: torch.nn.Module, latents: torch.Tensor,
                           project: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                           bf16: bool = False) -> torch.Tensor:
    """Generate images for `latents` without gradients and embed them; never holds the images.
    Every call has `batch_size` rows (the last chunk padded, its extra rows dropped): one shape,
    so a compiled generator compiles once and CUDA graphs apply."""
    device = next(generator.parameters()).device
    # bf16 (on CUDA, as the training step): the pool's images are only compared, in a random
    # projection, and generating them is about a third of a run's compute.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    out = []
    for z in latents.split(batch_size):
        rows = len(z)
        if rows < batch_size:
            z = torch.cat([z, z[-1:].expand(batch_size - rows, -1)])
        with autocast:
            images = generator(z.to(device))
        out.append(project(images.float())[:rows])
    return torch.cat(out)


# --- one re-selection round, sharded across ranks -------------------------------------------

POOL_BLOCK = 4096  # the pool is made of fixed blocks, so any rank can regenerate any latent (a multiple of KNN_BLOCK)


def stream_seed(seed: int, stream: str, *indices: int) -> int:
    """The seed of one named random stream of a run: (run seed, stream name, indices).

    Every random draw of training comes from a stream named here ("pool", "latent-noise",
    "data-order"), so two streams never hand out the same numbers, on any rank; the data
    order once shared the numbers of pool block 7 by using the same (seed, epoch, 7)."""
    tag = zlib.crc32(stream.encode())
    return int(np.random.SeedSequence([int(seed), tag, *(int(i) for i in indices)]).generate_state(1, np.uint64)[0])


def stream(seed: int, name: str, *indices: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of the stream on `device`: CPU draws are the same on every machine; a CUDA
    stream draws on the GPU (other numbers than the CPU's, the same on every rank), so that
    training randomness is never made on the host and copied over in every step."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name, *indices))


def pool_block_latents(seed: int, round_: int, block: int, size: int, z_dim: int,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Latents of pool block `block` in re-selection round `round_`: (size, z_dim), drawn on
    `device` (where they are used: no copy from the host per chunk)."""
    return torch.randn(size, z_dim, generator=stream(seed, "pool", round_, block, device=device), device=device)


@dataclass(frozen=True)
class Selection:
    """One round's outcome, on the device: `summary()` reads its figures (at a log step)."""

    latents: torch.Tensor       # (N, z_dim): the matched latent of every data point
    index: torch.Tensor         # (N,) global pool index of each match (-1: none survived, random latent)
    distance: torch.Tensor      # (N,) distance in the search space
    rejected: torch.Tensor      # 0-d: pool samples rejected (within eps of a data point), all ranks
    pool_nearest: torch.Tensor  # (this rank's pool) each sample's distance to its nearest data point
    pool_size: int
    clock: DeviceClock          # three marks per block of this rank: start, generated, searched

    def _phase(self, offset: int) -> float:
        return sum(self.clock.seconds(i, i + 1) for i in range(offset, len(self.clock.marks) - 1, 3))

    @property
    def generate_s(self) -> float:
        """Device time spent generating and embedding the pool (this rank)."""
        return self._phase(0)

    @property
    def search_s(self) -> float:
        """Device time spent in the nearest-neighbour search (this rank)."""
        return self._phase(1)

    def summary(self) -> dict:
        """The round's figures as numbers: reading them makes the host wait for the device."""
        matched = self.index >= 0
        distances = self.distance[matched].cpu()
        return {"pool": self.pool_size, "rejected": int(self.rejected), "unmatched": int((~matched).sum()),
                "mean_distance": float(distances.mean()) if len(distances) else None,
                "matched_distance": quantiles(distances), "sample_to_data_distance": quantiles(self.pool_nearest),
                "generate_s": self.generate_s, "search_s": self.search_s}


@torch.no_grad()
def reselect(generator: torch.nn.Module, data_features: torch.Tensor, project: Callable, *, z_dim: int,
             seed: int, round_: int, force_factor: int, eps: float, latent_noise: float, pool_batch: int,
             info: DistInfo, pool_multiple: int = 1, knn_ignore: int = 0, bf16: bool = False) -> Selection:
    """One RS-IMLE round: each rank generates its blocks of the pool, searches them, and the
    nearest surviving sample per data point over all ranks wins. A rank with no block (more
    ranks than blocks) offers nothing (distance inf). The pool has force_factor x N samples,
    rounded up to a multiple of pool_multiple (RS-IMLE's code: 1,024).

    Everything stays on the device and nothing is read back, so on a GPU the round is queued
    behind the steps before it and the host never waits; its two phases are timed with marks
    in the device's order (train/device_clock.py), read with its figures."""
    N = data_features.shape[0]
    pool_size = -(-force_factor * N // pool_multiple) * pool_multiple
    sizes = [min(POOL_BLOCK, pool_size - b) for b in range(0, pool_size, POOL_BLOCK)]
    mine = list(range(info.rank, len(sizes), info.world_size))
    device = data_features.device
    clock = DeviceClock(device)

    # Block by block: generate, embed, search, forget. Memory stays at one block of features
    # plus (N,) running bests, whatever N and the pool size. Rejection depends only on a
    # sample and the data, so the nearest survivor over all blocks is the best of each
    # block's nearest survivor.
    distance = torch.full((N,), float("inf"), device=device)
    index = torch.full((N,), -1, dtype=torch.long, device=device)
    rejected, nearest = torch.zeros((), dtype=torch.long, device=device), []
    for block in mine:
        clock.mark()
        z = pool_block_latents(seed, round_, block, sizes[block], z_dim, device)
        features = generate_pool_features(generator, z, project, pool_batch, bf16)
        clock.mark()
        found = select_nearest(data_features, features, eps, knn_ignore=knn_ignore)
        better = found.distance < distance
        distance = torch.where(better, found.distance, distance)
        index = torch.where(better, found.index + block * POOL_BLOCK, index)
        rejected = rejected + found.rejected.sum()
        nearest.append(found.pool_nearest)
        clock.mark()

    # The global winner per data point: smallest distance over ranks (ties -> lowest rank).
    all_distance, all_index = all_gather(distance, info), all_gather(index, info)   # (W, N)
    winner = all_distance.argmin(dim=0, keepdim=True)
    distance, index = all_distance.gather(0, winner)[0], all_index.gather(0, winner)[0]
    rejected = all_gather(rejected.reshape(1), info).sum()

    # Every rank rebuilds the winning latents from their blocks: identical on all ranks. Each
    # block is drawn again and its winners taken where they are (no list of blocks read back).
    noise_gen = stream(seed, "latent-noise", round_, device=device)
    latents = torch.randn(N, z_dim, generator=noise_gen, device=device)   # for points with no survivor
    for block, size in enumerate(sizes):
        offset = index - block * POOL_BLOCK
        here = (offset >= 0) & (offset < size)
        z = pool_block_latents(seed, round_, block, size, z_dim, device)    # the numbers the pool had
        latents = torch.where(here[:, None], z[offset.clamp(0, size - 1)], latents)
    latents += latent_noise * torch.randn(N, z_dim, generator=noise_gen, device=device)
    return Selection(latents=latents, index=index, distance=distance, rejected=rejected,
                     pool_nearest=torch.cat(nearest) if nearest else torch.zeros(0, device=device),
                     pool_size=pool_size, clock=clock)
