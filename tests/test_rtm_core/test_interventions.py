"""rtm_core.interventions: a hook between outer steps that is exact when it does nothing, and
the token interventions the app offers (freeze, knock out, swap)."""

import pytest
import torch

from rtm_core import Generator, TokenIntervention, seeds_to_z, tiny, trajectory


@pytest.fixture(scope="module")
def g():
    torch.manual_seed(0)
    return Generator(tiny()).eval()


def test_an_identity_hook_is_bit_identical(g):
    z = seeds_to_z([3, 4], g.z_dim)
    plain = trajectory(g, z, 6, tokens=True)
    seen = []
    hooked = trajectory(g, z, 6, tokens=True, intervene=lambda h, state: seen.append(h) or state)
    assert seen == list(range(7))                                   # every step, 0 included
    assert torch.equal(plain.ws, hooked.ws) and torch.equal(plain.images, hooked.images)
    # and an intervention that starts after the last step changes nothing either
    late = trajectory(g, z, 6, tokens=True, intervene=TokenIntervention("freeze", token=1, step=7))
    assert torch.equal(plain.ws, late.ws)


def test_freeze_holds_the_token_from_its_step_on(g):
    z = seeds_to_z([5], g.z_dim)
    plain = trajectory(g, z, 6, tokens=True)
    frozen = trajectory(g, z, 6, tokens=True, intervene=TokenIntervention("freeze", token=2, step=3))
    assert torch.equal(frozen.tokens[:4], plain.tokens[:4])                       # nothing changes before
    for h in range(3, 7):
        assert torch.equal(frozen.tokens[h, :, 2], plain.tokens[3, :, 2])         # held at step 3's value
    assert not torch.equal(frozen.ws[-1], plain.ws[-1])                             # and it matters
    assert not torch.equal(frozen.tokens[-1, :, 1], plain.tokens[-1, :, 1])        # the others follow suit


def test_knockout_holds_the_initial_value(g):
    z = seeds_to_z([5], g.z_dim)
    plain = trajectory(g, z, 5, tokens=True)
    out = trajectory(g, z, 5, tokens=True, intervene=TokenIntervention("knockout", token=0, step=2))
    assert torch.equal(out.tokens[:2], plain.tokens[:2])
    assert all(torch.equal(out.tokens[h, :, 0], plain.tokens[0, :, 0]) for h in range(2, 6))


def test_swap_takes_the_donor_token_once_and_the_recursion_goes_on(g):
    a, b = seeds_to_z([1], g.z_dim), seeds_to_z([2], g.z_dim)
    plain, donor = trajectory(g, a, 5, tokens=True), trajectory(g, b, 5, tokens=True)
    swap = TokenIntervention("swap", token=3, step=2, donor=donor.tokens[2, 0])
    out = trajectory(g, a, 5, tokens=True, intervene=swap)
    assert torch.equal(out.tokens[:2], plain.tokens[:2])
    assert torch.equal(out.tokens[2, :, 3], donor.tokens[2, :, 3])
    assert torch.equal(out.tokens[2, :, :3], plain.tokens[2, :, :3])              # only that token
    assert not torch.equal(out.tokens[3, :, 3], donor.tokens[2, :, 3])             # not held: it evolves
    # the same object again: the same result (its memory is reset at step 0)
    assert torch.equal(trajectory(g, a, 5, intervene=swap).ws, out.ws)


def test_bad_interventions_are_refused_with_the_reason(g):
    with pytest.raises(ValueError, match="kind must be one of"):
        TokenIntervention("delete", token=0, step=1)
    with pytest.raises(ValueError, match="needs the donor"):
        TokenIntervention("swap", token=0, step=1)
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        TokenIntervention("freeze", token=0, step=-1)
    with pytest.raises(ValueError, match=r"token must be in \[0, 3\]"):
        trajectory(g, seeds_to_z([1], g.z_dim), 3, intervene=TokenIntervention("freeze", token=9, step=1))
    mlp = Generator(tiny("mlp")).eval()
    with pytest.raises(ValueError, match="one-pass MLP mapper has none"):
        trajectory(mlp, seeds_to_z([1], mlp.z_dim), 2, intervene=TokenIntervention("freeze", token=0, step=1))
