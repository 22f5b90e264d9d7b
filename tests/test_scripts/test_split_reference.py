"""scripts/split_reference.py: what new images of the data's own kind score, from half-splits."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("split_reference", ROOT / "scripts" / "split_reference.py")
split_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(split_reference)


def test_half_splits_of_one_distribution_score_its_expected_coverage():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(100, 4, 4, 3), dtype=np.uint8)
    ref = split_reference.split_reference(images, rng.normal(size=(100, 8)), splits=150)
    assert ref["sizes"] == (50, 50)
    assert ref["coverage"][0] == pytest.approx(ref["coverage_same_distribution"], abs=0.02)  # 0.885; se ~0.004
    # Independent noise images in 48 dimensions: below the uniform ceiling (31.8) because in high
    # dimensions a few images are nearest to many ("hubs"; measured 26.7), yet far from collapse.
    assert 0.6 * ref["distinct_nearest_uniform"] < ref["distinct_nearest"][0] < ref["distinct_nearest_uniform"]


def test_too_few_images_are_refused():
    with pytest.raises(ValueError, match="at least 10 images"):
        split_reference.split_reference(np.zeros((6, 2, 2, 3), np.uint8), np.zeros((6, 4)))
