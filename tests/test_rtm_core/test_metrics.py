import warnings

import numpy as np
import pytest
import torch
from prdc import compute_prdc  # the reference implementation of Naeem et al.
from torchmetrics.image.fid import _compute_fid  # an independent Fréchet distance
from torchmetrics.image.kid import poly_mmd  # an independent polynomial-kernel MMD

from rtm_core.metrics import (EfficientNetLite0Features, expected_coverage, feature_statistics, frechet_distance,
                              frechet_distance_between,
                              kernel_inception_distance, precision_recall_density_coverage)


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 24)), rng.normal(loc=0.25, scale=1.1, size=(350, 24))


def close(a, b):
    assert a == pytest.approx(b, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("chunk", [37, 4096])
def test_prdc_matches_the_reference(features, chunk):
    real, fake = features
    ours = precision_recall_density_coverage(real, fake, k=3, chunk=chunk)
    ref = compute_prdc(real, fake, nearest_k=3)
    for key in ("precision", "recall", "density", "coverage"):
        close(ours[key], float(ref[key]))


def test_fd_matches_the_reference(features):
    real, fake = features
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    ref = _compute_fid(*(torch.tensor(a) for a in (mu1, s1, mu2, s2))).item()
    close(frechet_distance(mu1, s1, mu2, s2), ref)


def test_kid_matches_the_reference(features):
    real, fake = features
    n = 350  # one subset of all fake and 350 real samples: the subset is a permutation of the reference's
    ours, _ = kernel_inception_distance(real[:n], fake, num_subsets=1, subset_size=n)
    close(ours, poly_mmd(torch.tensor(real[:n]), torch.tensor(fake)).item())


def test_known_cases(features):
    real, _ = features
    same = precision_recall_density_coverage(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    mu, s = feature_statistics(real)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6
    far = precision_recall_density_coverage(real, real + 1000.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_expected_coverage_is_what_samples_of_the_same_distribution_reach():
    # Monte Carlo: real and fake drawn from one Gaussian, at the evaluation's sizes (103 training
    # faces, draws of 110). 300 trials put the mean's standard error near 0.003.
    rng = np.random.default_rng(1)
    measured = np.mean([precision_recall_density_coverage(rng.normal(size=(103, 8)),
                                                          rng.normal(size=(110, 8)))["coverage"] for _ in range(300)])
    assert expected_coverage(103, 110) == pytest.approx(0.8903, abs=1e-4)
    assert measured == pytest.approx(expected_coverage(103, 110), abs=0.012)
    assert expected_coverage(100_000, 100_000, k=3) == pytest.approx(1 - 0.5 ** 3, abs=1e-4)  # Naeem et al.'s limit
    assert expected_coverage(50, 10, k=1) == pytest.approx(10 / 59)
    with pytest.raises(ValueError, match="more than k"):
        expected_coverage(3, 10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="more than k"):
        precision_recall_density_coverage(np.zeros((3, 2)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="real and fake must be"):
        precision_recall_density_coverage(np.zeros((10, 2)), np.zeros((10, 3)))


def test_efficientnet_features_offline():
    extractor = EfficientNetLite0Features()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    f = extractor(images)
    assert f.shape == (3, 1280) and torch.isfinite(f).all()
    grey = extractor(images[:, :1])
    assert grey.shape == (3, 1280)
    torch.testing.assert_close(extractor(images[:1]), f[:1], rtol=1e-4, atol=1e-4)  # no batch dependence (eval BN)
    with pytest.raises(ValueError, match="images must have shape"):
        extractor(images[:, :2])


def test_fid_inception_from_a_weights_file(tmp_path):
    from rtm_core.metrics.inception import FIDInceptionV3, load_fid_inception

    torch.manual_seed(0)
    path = tmp_path / "pt_inception-test.pth"
    state = FIDInceptionV3().state_dict()
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)  # as pytorch-fid's
    model = load_fid_inception(path)
    f = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    with pytest.raises(FileNotFoundError, match="pt_inception"):
        load_fid_inception(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not hold FID Inception-v3 weights"):
        load_fid_inception(tmp_path / "other.pth")
    torch.save({"model": FIDInceptionV3}, tmp_path / "pickled.pth")  # a pickled class: refused, never run
    with pytest.raises(ValueError, match="not a plain PyTorch state dict"):
        load_fid_inception(tmp_path / "pickled.pth")


def test_fd_on_fewer_samples_than_dimensions_says_why_it_is_inaccurate():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(20, 64))     # rank <= 19 covariances of 64 dims
    with pytest.warns(RuntimeWarning, match="20 samples of 64-dim features: with fewer samples than feature dim"):
        value = frechet_distance_between(a, b)
    assert value == pytest.approx(frechet_distance(*feature_statistics(a), *feature_statistics(b)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance_between(rng.normal(size=(80, 8)), rng.normal(size=(80, 8)))   # enough samples: silent


def test_seed_diversity_with_the_data_spacing_given_is_the_same_result():
    """What the training probe does: the data's own spacing measured once (data_spacing), then given."""
    from rtm_core.metrics.diversity import data_spacing, seed_diversity

    data = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    images = torch.rand(200, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert seed_diversity(images, data, spacing=data_spacing(data)) == seed_diversity(images, data)
