"""What new images of the training data's own kind score on this project's metrics.

    python scripts/split_reference.py data/noto-faces-32 [--splits 200]

A generator that learned the data's distribution perfectly, without copying, makes new
images drawn from it. How would those score against the training set? With a few hundred
images nobody has the new ones, but the data itself can stand in: split the training images
at random into halves A and B and score B as "samples" against A as "training set", many
times. The result is the reference a model's scores are read against (docs/EVALUATION.md):
- precision, recall, coverage on EfficientNet-Lite0 features (k = 3), beside
  `rtm_core.metrics.expected_coverage` for the halves' sizes;
- distinct nearest: how many distinct images of A are nearest (pixel RMS) to the images of B,
  beside what images drawn uniformly from A reach, N (1 - (1 - 1/N)^S). The ratio says how
  far below that ceiling real data of this kind falls.
Halves are smaller than the evaluation's sets (51 against 52 for 103 faces), so the numbers
are a guide to the scale, not a per-count match.
"""

import argparse

import numpy as np
import torch

from rtm_core.metrics import (EfficientNetLite0Features, expected_coverage, precision_recall_density_coverage,
                              seed_diversity)
from train.data import load_prepared
from train.evaluation import real_features


def split_reference(images: np.ndarray, features: np.ndarray, splits: int = 200, seed: int = 0) -> dict:
    """Mean and sd over `splits` random half-splits of each metric, B scored against A, and the
    references for A and B's sizes (expected coverage, the uniform distinct-nearest ceiling)."""
    if len(images) < 10 or len(images) != len(features):
        raise ValueError(f"need at least 10 images with one feature row each, got {len(images)} and {len(features)}")
    as_samples = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 127.5 - 1   # seed_diversity's input
    rng = np.random.default_rng(seed)
    half, rows = len(images) // 2, []
    for _ in range(splits):
        order = rng.permutation(len(images))
        a, b = order[:half], order[half:]
        diversity = seed_diversity(as_samples[b], images[a], num_seeds=len(b))
        rows.append({**precision_recall_density_coverage(features[a], features[b], k=3),
                     "distinct_nearest": float(diversity["distinct_nearest"])})
    out = {key: (float(np.mean([r[key] for r in rows])), float(np.std([r[key] for r in rows]))) for key in rows[0]}
    return {**out, "sizes": (len(a), len(b)), "coverage_same_distribution": expected_coverage(len(a), len(b)),
            "distinct_nearest_uniform": diversity["distinct_nearest_uniform"]}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a prepared dataset folder (python -m train.data)")
    parser.add_argument("--splits", type=int, default=200, help="random half-splits to average over")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images = load_prepared(args.data).images
    ref = split_reference(images, real_features(args.data, EfficientNetLite0Features(), 50_000), args.splits, args.seed)
    a, b = ref["sizes"]
    print(f"{args.data}: {len(images)} images, {args.splits} random splits of {a} (training set) "
          f"against {b} (new images)")
    for key in ("precision", "recall", "density", "coverage", "distinct_nearest"):
        print(f"  {key:16s} {ref[key][0]:.3f} ± {ref[key][1]:.3f}")
    print(f"  coverage expected for samples of the same distribution: {ref['coverage_same_distribution']:.3f}")
    print(f"  distinct nearest if uniform over the training half: {ref['distinct_nearest_uniform']:.1f}; "
          f"new images reach {ref['distinct_nearest'][0] / ref['distinct_nearest_uniform']:.0%} of it")


if __name__ == "__main__":
    main()
