import numpy as np
import pytest
import torch

from rtm_core import iter_steps, sample, seed_to_z, seeds_to_z, to_uint8, trajectory


def test_seed_to_z_values_are_pinned():
    # These numbers are the contract: seed 42 is this z on every machine, forever.
    expected = [0.33669036626815796, 0.12880940735340118, 0.23446236550807953,
                0.23033303022384644, -1.1228563785552979, -0.18632829189300537]
    assert seed_to_z(42, 6).tolist() == expected
    assert seed_to_z(0, 3).tolist() == [1.5409960746765137, -0.293428897857666, -2.1787893772125244]


def test_seed_to_z_ignores_global_rng_and_default_device():
    want = seed_to_z(7, 32)
    torch.manual_seed(123)
    torch.randn(10)
    with torch.device("meta"):  # a default device other than the CPU
        got = seed_to_z(7, 32)
    assert got.device.type == "cpu" and got.dtype == torch.float32
    assert torch.equal(got, want)
    assert torch.equal(seeds_to_z([7, 8], 32)[0], want)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "42", None, True])
def test_bad_seeds_are_value_errors(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_to_z(seed, 4)


def test_bad_z_dim_and_seed_lists():
    with pytest.raises(ValueError, match="z_dim"):
        seed_to_z(1, 0)
    with pytest.raises(ValueError, match="seeds"):
        seeds_to_z([], 4)
    with pytest.raises(ValueError, match="seeds"):
        seeds_to_z(3, 4)


def test_iter_steps_yields_every_step_from_zero(any_generator):
    g = any_generator
    z = seeds_to_z([1, 2, 3], g.z_dim)
    outs = list(iter_steps(g, z, num_steps=5))
    assert [o.step for o in outs] == list(range(6))
    for o in outs:
        assert o.w.shape == (3, g.w_dim) and o.image.shape == (3, 3, 16, 16)
        assert o.state.step == o.step and not o.w.requires_grad
    # The last step's w is what the mapper computes with that many steps.
    torch.testing.assert_close(outs[-1].w, g.map(z, 5))
    torch.testing.assert_close(outs[2].image, g(z, 2))


def test_iter_steps_defaults_to_the_trained_steps(any_generator):
    outs = list(iter_steps(any_generator, seeds_to_z([5], 16), decode=False))
    assert len(outs) == any_generator.num_steps + 1
    assert all(o.image is None for o in outs)


def test_iter_steps_does_not_leak_no_grad_into_the_caller(rtm):
    for _ in iter_steps(rtm, seeds_to_z([1], 16), 2):
        assert torch.is_grad_enabled()


@pytest.mark.parametrize("num_steps", [1, 64])
def test_any_number_of_steps_works(rtm, num_steps):
    tr = trajectory(rtm, seeds_to_z([1, 2], 16), num_steps)
    assert tr.ws.shape == (num_steps + 1, 2, 16) and tr.images.shape == (num_steps + 1, 2, 3, 16, 16)
    assert torch.isfinite(tr.images).all()


def test_trajectory_matches_iter_steps_and_batch_size_does_not_matter(any_generator):
    g = any_generator
    z = seeds_to_z([3, 4], g.z_dim)
    outs = list(iter_steps(g, z, 4))
    tr = trajectory(g, z, 4, decode_batch=3)
    torch.testing.assert_close(tr.ws, torch.stack([o.w for o in outs]))
    torch.testing.assert_close(tr.images, torch.stack([o.image for o in outs]), rtol=1e-4, atol=1e-4)
    # A seed's images do not depend on which other seeds share its batch.
    alone = trajectory(g, z[1:], 4)
    torch.testing.assert_close(alone.images[:, 0], tr.images[:, 1], rtol=1e-4, atol=1e-4)
    assert trajectory(g, z, 4, decode=False).images is None


def test_sample_is_the_last_step(rtm):
    z = seeds_to_z([9], 16)
    torch.testing.assert_close(sample(rtm, z), rtm(z))
    torch.testing.assert_close(sample(rtm, z, 7), rtm(z, 7))


def test_bad_arguments_name_themselves(rtm):
    z = seeds_to_z([1], 16)
    with pytest.raises(ValueError, match="num_steps"):
        next(iter_steps(rtm, z, 0))
    with pytest.raises(ValueError, match="decode_batch"):
        trajectory(rtm, z, 2, decode_batch=0)
    with pytest.raises(ValueError, match=r"z must be a tensor of shape \(batch, 16\)"):
        sample(rtm, torch.randn(1, 8))


def test_to_uint8():
    images = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = to_uint8(images)
    assert out.shape == (1, 1, 5, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match="images must have shape"):
        to_uint8(images[0])


def test_refinement_grid(rtm):
    from rtm_core import refinement_grid

    picture = refinement_grid(rtm, [1, 2, 3], [1, 3, 5], pad=2)
    assert picture.shape == (3 * 18 + 2, 3 * 18 + 2, 3) and picture.dtype == np.uint8
    cell = picture[2:18, 2 + 2 * 18:18 + 2 * 18]  # seed 1 after 5 steps (row 0, column 2)
    want = to_uint8(sample(rtm, seeds_to_z([1], 16), 5))[0]
    assert np.abs(cell.astype(int) - want).max() <= 1  # batch composition may flip a rounding
    with pytest.raises(ValueError, match="steps"):
        refinement_grid(rtm, [1], [0])
