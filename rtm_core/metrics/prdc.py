"""k-NN precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

Each real sample gets a radius: the distance to its k-th nearest other real sample (the
same for fake samples). Then
    precision = share of fake samples inside some real sample's ball
    recall    = share of real samples inside some fake sample's ball
    density   = mean over fake samples of (real balls containing it) / k
    coverage  = share of real samples whose ball contains some fake sample
Coverage is read against a reference below 1 for finite sets: fake samples drawn independently
from the real data's own distribution cover, in expectation, only `expected_coverage(N, M, k)`
of the real ones (0.89 for this project's 103 training faces against draws of 110 at k = 3).

Distances are computed in blocks of `chunk` x `chunk`, so 50,000 x 50,000 comparisons
need a few hundred MB, not 10 GB.
"""

from __future__ import annotations

import numpy as np
import torch


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest *other* row."""
    radii = []
    for i in range(0, len(x), chunk):
        # k+1 smallest per row over all columns, merged block by block; the smallest is the row itself (0)
        best = None
        for j in range(0, len(x), chunk):
            d = torch.cdist(x[i:i + chunk], x[j:j + chunk])
            cand = d if best is None else torch.cat([best, d], dim=1)
            best = cand.topk(min(k + 1, cand.shape[1]), dim=1, largest=False).values
        radii.append(best[:, k])
    return torch.cat(radii)


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 3,
                                      chunk: int = 2048) -> dict[str, float]:
    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake_t = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if real_t.ndim != 2 or fake_t.ndim != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"real and fake must be (N, d) and (M, d), got {tuple(real_t.shape)} and {tuple(fake_t.shape)}")
    if min(len(real_t), len(fake_t)) <= k:
        raise ValueError(f"need more than k={k} samples in each set")
    real_r = _kth_neighbour_radius(real_t, k, chunk)                  # (N,)
    fake_r = _kth_neighbour_radius(fake_t, k, chunk)                  # (M,)

    fake_in_real = torch.zeros(len(fake_t), dtype=torch.bool)         # precision
    fake_ball_count = torch.zeros(len(fake_t), dtype=torch.float64)   # density
    real_in_fake = torch.zeros(len(real_t), dtype=torch.bool)         # recall
    real_nearest_fake = torch.full((len(real_t),), float("inf"), dtype=torch.float64)  # coverage
    for i in range(0, len(real_t), chunk):
        for j in range(0, len(fake_t), chunk):
            d = torch.cdist(real_t[i:i + chunk], fake_t[j:j + chunk])      # (n, m)
            inside_real = d <= real_r[i:i + chunk, None]
            fake_in_real[j:j + chunk] |= inside_real.any(dim=0)
            fake_ball_count[j:j + chunk] += inside_real.sum(dim=0)
            real_in_fake[i:i + chunk] |= (d <= fake_r[None, j:j + chunk]).any(dim=1)
            real_nearest_fake[i:i + chunk] = torch.minimum(real_nearest_fake[i:i + chunk], d.min(dim=1).values)
    return {
        "precision": fake_in_real.double().mean().item(),
        "recall": real_in_fake.double().mean().item(),
        "density": (fake_ball_count / k).mean().item(),
        "coverage": (real_nearest_fake < real_r).double().mean().item(),
    }


def expected_coverage(num_real: int, num_fake: int, k: int = 3) -> float:
    """Coverage that `num_fake` samples drawn independently from the real data's own (continuous)
    distribution reach in expectation against `num_real` real samples (Naeem et al. 2020,
    Lemma 2): 1 - prod_{i=1..k} (N - i) / (N + M - i). A real sample goes uncovered exactly when
    all its k nearest neighbours among the other N + M - 1 points are real. For N = M it tends to
    1 - 2^-k (0.875 at k = 3); a score above it means samples sit closer to the real images than
    new images from their distribution would, the way copies do."""
    if num_real <= k or num_fake < 1:
        raise ValueError(f"need more than k={k} real samples and at least one fake, got {num_real} and {num_fake}")
    uncovered = 1.0
    for i in range(1, k + 1):
        uncovered *= (num_real - i) / (num_real + num_fake - i)
    return 1.0 - uncovered
