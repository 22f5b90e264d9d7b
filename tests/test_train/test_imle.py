import pytest
import torch
import torch.nn.functional as F

import train.imle as imle
from train.distributed import DistInfo
from train.imle import RandomProjection, pool_block_latents, reselect, select_nearest

ONE_PROCESS = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def brute_force(data, pool, eps):
    d = torch.cdist(data, pool)
    rejected = d.min(dim=0).values < eps
    d[:, rejected] = float("inf")
    dist, idx = d.min(dim=1)
    idx[torch.isinf(dist)] = -1
    return idx, dist, rejected


def test_hand_made_case():
    data = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    pool = torch.tensor([[0.05, 0.0],    # inside eps of data point 0: never chosen
                         [1.0, 0.0],     # the nearest survivor of point 0
                         [2.0, 0.0],
                         [10.0, 0.5],    # nearest survivor of point 1
                         [10.0, 0.01]])  # inside eps of point 1
    m = select_nearest(data, pool, eps=0.1)
    assert m.index.tolist() == [1, 3]
    assert m.rejected.tolist() == [True, False, False, False, True]
    torch.testing.assert_close(m.distance, torch.tensor([1.0, 0.5]))


@pytest.mark.parametrize("chunk", [3, 7, 64, 4096])
@pytest.mark.parametrize("keep_bytes", [0, 1 << 20])
def test_matches_brute_force_with_any_chunking(chunk, keep_bytes, monkeypatch):
    """The data in one chunk or several, the first pass's distances kept for the second or
    computed again: the same matches as one search over everything."""
    monkeypatch.setattr(imle, "KEEP_BYTES", {"cpu": keep_bytes})
    g = torch.Generator().manual_seed(0)
    data = F.normalize(torch.randn(50, 6, generator=g), dim=1)
    pool = F.normalize(torch.randn(400, 6, generator=g), dim=1)
    eps = 0.6  # large enough that many pool samples are rejected
    m = select_nearest(data, pool, eps=eps, chunk=chunk)
    idx, dist, rejected = brute_force(data, pool, eps)
    assert rejected.sum() > 50
    assert torch.equal(m.rejected, rejected)
    assert torch.equal(m.index, idx)
    torch.testing.assert_close(m.distance, dist)
    assert not m.rejected[m.index].any()  # a sample inside eps is never chosen


def test_no_survivor_at_all():
    data = torch.zeros(3, 2)
    m = select_nearest(data, torch.zeros(5, 2), eps=0.1)
    assert m.index.tolist() == [-1, -1, -1] and torch.isinf(m.distance).all()


def test_bad_shapes():
    with pytest.raises(ValueError, match="same d"):
        select_nearest(torch.zeros(3, 2), torch.zeros(4, 3), eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        select_nearest(torch.zeros(3, 2), torch.zeros(4, 2), eps=-1)


def test_random_projection_is_fixed_by_its_seed_and_unit_norm():
    images = torch.randn(4, 3, 8, 8)
    a, b = RandomProjection(192, 16, seed=3), RandomProjection(192, 16, seed=3)
    assert torch.equal(a(images), b(images))
    torch.testing.assert_close(a(images).norm(dim=1), torch.ones(4))
    assert not torch.equal(a(images), RandomProjection(192, 16, seed=4)(images))


def test_reselect_returns_the_latents_of_the_chosen_pool_samples():
    from rtm_core import Generator, tiny

    torch.manual_seed(0)
    g = Generator(tiny()).eval()
    project = RandomProjection(3 * 16 * 16, 32, seed=0)
    data = project(torch.rand(20, 3, 16, 16) * 2 - 1)
    sel = reselect(g, data, project, z_dim=16, seed=5, round_=2, force_factor=3, eps=0.0, latent_noise=0.0,
                   pool_batch=7, info=ONE_PROCESS)
    assert sel.pool_size == 60 and (sel.index >= 0).all()
    pool = pool_block_latents(5, 2, 0, 60, 16)
    torch.testing.assert_close(sel.latents, pool[sel.index])
    # The chosen latent really is the nearest pool sample in the search space.
    with torch.no_grad():
        feats = project(g(pool))
    torch.testing.assert_close(sel.index, torch.cdist(data, feats).argmin(dim=1))


def test_block_by_block_search_equals_one_global_search(monkeypatch):
    from rtm_core import Generator, tiny

    monkeypatch.setattr(imle, "POOL_BLOCK", 16)  # 5 blocks for a pool of 80
    torch.manual_seed(0)
    g = Generator(tiny()).eval()
    project = RandomProjection(3 * 16 * 16, 32, seed=0)
    data = project(torch.rand(20, 3, 16, 16) * 2 - 1)
    pool = torch.cat([pool_block_latents(1, 0, b, 16, 16) for b in range(5)])
    with torch.no_grad():
        feats = project(g(pool))
    eps = torch.cdist(data, feats).min(dim=0).values.quantile(0.3).item()  # rejects about 30% of the pool
    idx, dist, rejected = brute_force(data, feats, eps)
    sel = reselect(g, data, project, z_dim=16, seed=1, round_=0, force_factor=4, eps=eps, latent_noise=0.0,
                   pool_batch=7, info=ONE_PROCESS)
    assert rejected.any() and sel.rejected == int(rejected.sum())
    assert torch.equal(sel.index, idx)
    found = idx >= 0
    torch.testing.assert_close(sel.latents[found], pool[idx[found]])


def test_every_image_rejected_falls_back_to_random_latents_and_noise_is_added():
    """eps larger than any distance: every pool sample is rejected, so every image gets a
    latent from the latent-noise stream (index -1), never a stale or zero one."""
    from rtm_core import Generator, tiny

    torch.manual_seed(0)
    g = Generator(tiny()).eval()
    project = RandomProjection(3 * 16 * 16, 32, seed=0)
    data = project(torch.rand(10, 3, 16, 16) * 2 - 1)
    kwargs = dict(z_dim=16, seed=5, round_=2, force_factor=3, pool_batch=7, info=ONE_PROCESS)
    none_left = reselect(g, data, project, eps=1e9, latent_noise=0.0, **kwargs)
    assert none_left.rejected == 30 and (none_left.index == -1).all()
    assert none_left.latents.std() > 0.5 and len({tuple(r.tolist()) for r in none_left.latents}) == 10
    plain = reselect(g, data, project, eps=0.0, latent_noise=0.0, **kwargs)
    noisy = reselect(g, data, project, eps=0.0, latent_noise=0.01, **kwargs)
    assert torch.equal(plain.index, noisy.index)
    difference = noisy.latents - plain.latents
    assert 0.005 < difference.std() < 0.02          # latent_noise is the std of what is added


def test_knn_rejection_lets_a_sixth_sample_inside_eps_survive():
    """RS-IMLE's code: each image rejects only its knn_ignore nearest samples of a block of
    1,024 that fall within eps. Six samples inside eps of image 0: the nearest 5 go, the 6th
    stays and is the match; the rule "any" rejects all six."""
    data = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    inside = torch.tensor([[0.01 * (i + 1), 0.0] for i in range(6)])        # distances 0.01 .. 0.06 < eps
    pool = torch.cat([inside, torch.tensor([[1.0, 0.0], [10.0, 0.5]])])
    knn = select_nearest(data, pool, eps=0.1, knn_ignore=5)
    assert knn.rejected.tolist() == [True] * 5 + [False, False, False]
    assert knn.index.tolist() == [5, 7]
    torch.testing.assert_close(knn.distance, torch.tensor([0.06, 0.5]))
    anywhere = select_nearest(data, pool, eps=0.1)
    assert anywhere.rejected.tolist() == [True] * 6 + [False, False] and anywhere.index.tolist() == [6, 7]


def test_knn_rejection_counts_per_block_of_1024():
    """The same 6 close samples split over two blocks of 1,024: each block rejects its own
    nearest 5, so all 6 go (3 in each block)."""
    pool = torch.stack([100.0 + 0.001 * torch.arange(2048.0), torch.zeros(2048)], dim=1)   # far, nearest first
    for j, row in enumerate([0, 1, 2, 1024, 1025, 1026]):
        pool[row] = torch.tensor([0.01 * (j + 1), 0.0])
    m = select_nearest(torch.zeros(1, 2), pool, eps=0.1, knn_ignore=5)
    assert m.rejected.nonzero().squeeze(1).tolist() == [0, 1, 2, 1024, 1025, 1026]
    assert m.index.tolist() == [3]   # none of the close ones survived: the nearest far sample


def test_pool_is_rounded_up_to_a_multiple():
    g = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.Tanh(), torch.nn.Unflatten(1, (3, 2, 2)))
    data = torch.rand(10, 3, 2, 2) * 2 - 1
    project = RandomProjection(12, 8)
    kwargs = dict(z_dim=16, seed=0, round_=0, force_factor=10, eps=0.0, latent_noise=0.0, pool_batch=64,
                  info=ONE_PROCESS)
    assert reselect(g, project(data), project, **kwargs).pool_size == 100
    assert reselect(g, project(data), project, pool_multiple=1024, knn_ignore=5, **kwargs).pool_size == 1024


@pytest.mark.parametrize("chunk", [7, 4096])
@pytest.mark.parametrize("keep_bytes", [0, 1 << 20])
def test_knn_rule_matches_a_search_block_by_block(chunk, keep_bytes, monkeypatch):
    """RS-IMLE's rule over three blocks of 1,024 and data in one chunk or in several: each data
    point rejects its 5 nearest samples of each block that lie within eps; every data point then
    takes its nearest survivor."""
    g = torch.Generator().manual_seed(1)
    data = F.normalize(torch.randn(30, 4, generator=g), dim=1)
    pool = F.normalize(torch.randn(2500, 4, generator=g), dim=1)
    eps = 0.2
    monkeypatch.setattr(imle, "KEEP_BYTES", {"cpu": keep_bytes})
    d = torch.cdist(data, pool)
    rejected = torch.zeros(2500, dtype=torch.bool)
    for b0 in range(0, 2500, 1024):
        near_d, near_i = d[:, b0:b0 + 1024].topk(5, dim=1, largest=False)
        rejected[near_i[near_d < eps] + b0] = True
    idx = d.masked_fill(rejected, float("inf")).argmin(dim=1)
    m = select_nearest(data, pool, eps=eps, chunk=chunk, knn_ignore=5)
    assert 30 < rejected.sum() < 450            # some points have more than 5 samples within eps: not all go
    assert (d.masked_fill(~rejected, float('inf')) < eps).sum() < (d < eps).sum()
    assert torch.equal(m.rejected, rejected) and torch.equal(m.index, idx)
