"""Sample-quality metrics: feature extractors, Fréchet distance, KID, precision/recall/density/coverage.

Fréchet distance on EfficientNet-Lite0 features is *not* FID: every output calls it
FD-EffNet. Standard FID needs Inception-v3 weights, which nothing here downloads.
"""

from .diversity import distinct_text, seed_diversity, w_spread
from .fd import feature_statistics, frechet_distance, frechet_distance_between, kernel_inception_distance
from .features import EfficientNetLite0Features
from .prdc import expected_coverage, precision_recall_density_coverage

__all__ = ["EfficientNetLite0Features", "distinct_text", "feature_statistics", "frechet_distance", "frechet_distance_between", "kernel_inception_distance",
           "expected_coverage", "precision_recall_density_coverage", "seed_diversity", "w_spread"]
