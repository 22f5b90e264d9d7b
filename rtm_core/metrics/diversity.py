"""Do different seeds give different styles and images? Cheap enough to log while training.

`w_spread`: the spread of w over seeds relative to its size. A mapper whose w is dominated by
a part every seed shares (an MLP at init: 0.54) hands the decoder nearly one style.
`seed_diversity`: how many distinct training images are nearest to the final frames of fixed
seeds, and how close they sit.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

BLOCK = 4096   # training images converted to float64 at a time


@torch.no_grad()
def w_spread(w: torch.Tensor) -> float:
    """std over seeds / RMS of w, for w (S, w_dim) of S seeds: 0 when every seed has the same
    w, about 1 when w is centred on 0 (sqrt(mean_j var_j) / sqrt(mean w^2))."""
    w = w.double()
    return float(w.var(dim=0, unbiased=False).mean().sqrt() / w.square().mean().sqrt().clamp(min=1e-30))


def seed_diversity(images: torch.Tensor, data: np.ndarray, num_seeds: int = 100,
                   spacing: Optional[float] = None) -> dict:
    """Do different seeds give different images? For the first `num_seeds` samples (seeds
    0..num_seeds-1; images (B, C, R, R) in [-1, 1]) and the training images (data: uint8
    N x R x R x C): how many distinct training images are nearest to them (pixel RMS), and
    how close they sit, in 0-255 units, beside the spacing of the training images themselves.
    With more samples than `num_seeds`, the count is also taken on each further whole block of
    `num_seeds` (seeds 100..199, ...): distinct_nearest_mean and _sd over the blocks. One block's
    count moves by about 3 between seed sets (its sd under uniform sampling), which is as large
    as the differences between training stages; the mean over 5 blocks moves by about 1.4.

    A collapsed model maps every seed to the same few images (noto-faces-rtm at 1,500 steps:
    21 of 100); a model that covers its data spreads them out, up to distinct_nearest_uniform,
    what seeds drawn uniformly from the training set reach on average; a model that copies its data
    has pixel_rms_nearest_median far below pixel_rms_data_nn_median.

    spacing: that median for this data, computed before (data_spacing): what a caller that probes
    the same data again and again gives, so that the data's own distances are measured once.
    """
    # On the host, whatever device made the images (a few hundred frames: a small copy); the training images
    # are converted to float64 a block at a time, never all at once (10^5 images of 64 px would be 9.8 GB).
    blocks = max(1, len(images) // num_seeds)
    fake = ((images[:blocks * num_seeds].detach().cpu().double().clamp(-1, 1) + 1) * 127.5).flatten(1)   # (S*blocks, C*R*R)
    if fake.shape[1] != int(np.prod(data.shape[1:])) or data.shape[-1] != images.shape[1]:
        raise ValueError(f"samples of {tuple(images.shape[1:])} cannot be compared with training images of "
                         f"{tuple(data.shape[1:])}; evaluate against the data the model was trained on")

    def real(start: int, stop: int) -> torch.Tensor:                                      # (n, C*R*R)
        return torch.from_numpy(data[start:stop]).permute(0, 3, 1, 2).double().flatten(1)

    # One pass over the training images, a block at a time: each block is converted once and
    # measured against the samples and against (up to) 2,000 training images, for the data's own
    # spacing (each of those to its nearest other one), so that 50,000 images need neither a
    # 50,000 x 50,000 matrix nor one float64 copy of them all.
    scale = fake.shape[1] ** 0.5                                                          # distance -> RMS
    queries = real(0, 2000) if spacing is None else None                                  # (q, C*R*R)
    to_data, between = [], torch.full((len(queries) if queries is not None else 0,), float("inf"), dtype=torch.float64)
    for start in range(0, len(data), BLOCK):
        block = real(start, start + BLOCK)
        to_data.append(torch.cdist(fake, block) / scale)
        if queries is not None:
            d = torch.cdist(queries, block) / scale                                       # (q, block)
            own = torch.arange(start, max(start, min(start + len(block), len(queries))))  # a query is no neighbour of itself
            d[own, own - start] = float("inf")
            between = torch.minimum(between, d.min(dim=1).values)
    to_data = torch.cat(to_data, dim=1)                                                   # (S*blocks, N)
    counts = [int(block.argmin(dim=1).unique().numel()) for block in to_data.split(num_seeds)]
    to_data = to_data[:num_seeds]                                                         # the first block: seeds 0..S-1
    # The most that independent seeds can reach in expectation: every seed nearest to a uniformly
    # random training image gives N (1 - (1 - 1/N)^S) distinct ones (64.2 for 100 seeds over 103 faces).
    n, s = len(data), to_data.shape[0]
    return {"distinct_nearest": counts[0], "diversity_seeds": int(s),
            "distinct_nearest_mean": float(np.mean(counts)), "distinct_nearest_sd": float(np.std(counts)),
            "distinct_nearest_blocks": len(counts),
            "distinct_nearest_uniform": n * (1 - (1 - 1 / n) ** s),
            "pixel_rms_nearest_median": float(to_data.min(dim=1).values.median()),
            "pixel_rms_data_nn_median": float(between.median()) if spacing is None else float(spacing)}


def data_spacing(data: np.ndarray) -> float:
    """The median pixel RMS from (up to 2,000) training images to their nearest other one: the
    data's own spacing, as seed_diversity measures it (give it back as its `spacing`)."""
    one = torch.zeros(1, data.shape[-1], *data.shape[1:3])
    return seed_diversity(one.expand(1, -1, -1, -1), data, num_seeds=1)["pixel_rms_data_nn_median"]


def distinct_text(point: dict) -> str:
    """A seed_diversity result as read by people: seeds 0-99's count, and its mean ± sd over the
    blocks of 100 seeds where there were several ("50 (53.2 ± 4.2)")."""
    if point.get("distinct_nearest_blocks", 1) > 1:
        return f"{point['distinct_nearest']} ({point['distinct_nearest_mean']:.1f} ± {point['distinct_nearest_sd']:.1f})"
    return str(point.get("distinct_nearest", "–"))
