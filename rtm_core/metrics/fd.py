"""Fréchet distance and kernel (MMD) distance between two sets of features."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be (N >= 2, d), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Nearly singular product (few samples): regularise as the reference implementations do.
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_between(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between two feature sets (N, d) and (M, d). With no more samples
    than dimensions (~100 samples of 1,280-d EfficientNet features) each covariance is
    singular: scipy's square root then warns "Matrix is singular" and says nothing of why, so
    that warning is replaced by one that does."""
    n, d = min(len(a), len(b)), a.shape[1]
    if n <= d:
        warnings.warn(f"Fréchet distance on {n} samples of {d}-dim features: with fewer samples than feature "
                      f"dimensions each covariance is singular, its matrix square root approximate, and FD biased "
                      f"upwards. Compare FD only between runs with the same sample count, or read KID (unbiased).",
                      RuntimeWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (d^-1 x.y + 1)^3, averaged over random
    subsets (Binkowski et al. 2018); returns (mean, std). Works on any features."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = min(len(real), len(fake), subset_size)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = real[rng.choice(len(real), n, replace=False)]
        y = fake[rng.choice(len(fake), n, replace=False)]
        values.append(_poly_mmd2(x, y))
    return float(np.mean(values)), float(np.std(values))


def _poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m = len(x)
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(sum_xx + sum_yy - 2 * k_xy.mean())
