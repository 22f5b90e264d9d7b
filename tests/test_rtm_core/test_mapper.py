import dataclasses

import pytest
import torch

from rtm_core import MapperConfig, MLPMapper, RecursiveMapper, tiny
from rtm_core.mapper import build_mapper


def rtm_mapper(**changes) -> RecursiveMapper:
    return RecursiveMapper(dataclasses.replace(tiny().mapper, **changes))


@pytest.mark.parametrize("kind", ["rtm", "mlp"])
def test_shapes_and_parameter_counts(kind):
    mapper = build_mapper(tiny(kind).mapper)
    z = torch.randn(5, 16)
    assert mapper(z).shape == (5, 16)
    # Counted by hand from the architecture, not from .parameters(): tiny() has z = w = 16,
    # T = 4 tokens of d = 8, expansion 4, one mixer layer; the MLP 2 layers of width 16.
    T, d, z, w = 4, 8, 16, 16
    swiglu = lambda n: n * 2 * (4 * n) + (4 * n) * n                      # gate_up + down, no biases
    rtm = (z * T * d + T * d) + T * d + swiglu(T) + d + swiglu(d) + d + (T * d * w + w)   # embed, pos, block, readout
    mlp = (z * 16 + 16) + (16 * w + w)
    assert mapper.num_parameters() == {"rtm": rtm, "mlp": mlp}[kind]


def test_rtm_state_shapes_and_step_count():
    mapper = rtm_mapper()
    state = mapper.init_state(torch.randn(2, 16))
    assert state.x.shape == state.z_H.shape == state.z_L.shape == (2, 4, 8)
    assert state.step == 0
    assert mapper.step(mapper.step(state)).step == 2


def test_step_is_pure_and_deterministic():
    mapper = rtm_mapper()
    state = mapper.init_state(torch.randn(3, 16))
    before = {k: v.clone() for k, v in vars(state).items() if isinstance(v, torch.Tensor)}
    a, b = mapper.step(state), mapper.step(state)
    for k, v in before.items():
        assert torch.equal(getattr(state, k), v), f"step mutated state.{k}"
    assert state.step == 0
    assert torch.equal(a.z_H, b.z_H) and torch.equal(a.z_L, b.z_L)
    assert not torch.equal(a.z_H, state.z_H)


@pytest.mark.parametrize("num_steps", [1, 3, 7])
@pytest.mark.parametrize("kind", ["rtm", "mlp"])
def test_looping_step_equals_forward(kind, num_steps):
    mapper = build_mapper(tiny(kind).mapper)
    z = torch.randn(4, 16)
    state = mapper.init_state(z)
    for _ in range(num_steps):
        state = mapper.step(state)
    torch.testing.assert_close(mapper.readout(state), mapper(z, num_steps), rtol=0, atol=0)


def test_the_recursion_matches_its_definition():
    # One outer step by hand: L updates of z_L = f(z_L + z_H + x), then z_H = f(z_H + z_L).
    mapper = rtm_mapper(num_cycles=3)
    state = mapper.init_state(torch.randn(2, 16))
    f = mapper.block
    z_L, z_H = state.z_L, state.z_H
    for _ in range(3):
        z_L = f(z_L + z_H + state.x)
    z_H = f(z_H + z_L)
    nxt = mapper.step(state)
    torch.testing.assert_close(nxt.z_L, z_L)
    torch.testing.assert_close(nxt.z_H, z_H)


def test_fixed_init_is_shared_by_all_seeds_and_input_init_is_not():
    z = torch.randn(2, 16)
    fixed = rtm_mapper().init_state(z)
    assert torch.equal(fixed.z_H[0], fixed.z_H[1])
    from_input = rtm_mapper(state_init="input").init_state(z)
    assert torch.equal(from_input.z_H, from_input.x)
    assert not torch.equal(from_input.z_H[0], from_input.z_H[1])


def _grads(mapper, z):
    mapper.zero_grad()
    mapper(z).square().sum().backward()
    return {n: p.grad.clone() for n, p in mapper.named_parameters() if p.grad is not None}


def test_short_gradient_equals_detaching_before_the_last_step():
    torch.manual_seed(1)
    mapper = rtm_mapper(num_steps=4, grad_steps=1)
    z = torch.randn(3, 16)
    got = _grads(mapper, z)

    # Reference: run 3 steps, detach the states (not x), differentiate only the 4th step.
    mapper.zero_grad()
    state = mapper.init_state(z)
    for _ in range(3):
        state = mapper.step(state)
    state = dataclasses.replace(state, z_H=state.z_H.detach(), z_L=state.z_L.detach())
    mapper.readout(mapper.step(state)).square().sum().backward()
    want = {n: p.grad.clone() for n, p in mapper.named_parameters() if p.grad is not None}

    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7)

    # ...and it differs from full backpropagation through all steps.
    full = _grads(_same_weights(mapper, grad_steps=4), z)
    assert any(not torch.allclose(full[n], want[n]) for n in want)


def _same_weights(mapper, **changes):
    other = RecursiveMapper(dataclasses.replace(mapper.config, **changes))
    other.load_state_dict(mapper.state_dict())
    return other


def _saved_bytes(mapper, z) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mapper(z).sum().backward()
    return total


def test_activation_memory_does_not_grow_with_H():
    z = torch.randn(8, 16)
    short = [_saved_bytes(rtm_mapper(num_steps=h), z) for h in (2, 8, 32)]
    assert short[0] == short[1] == short[2] > 0
    full = [_saved_bytes(rtm_mapper(num_steps=h, grad_steps=h), z) for h in (2, 8)]
    assert full[1] > 3 * full[0]  # the ablation really backpropagates through every step


def test_no_gradient_when_grad_is_disabled():
    with torch.no_grad():
        assert not rtm_mapper()(torch.randn(2, 16)).requires_grad


@pytest.mark.parametrize("num_steps", [1, 2, 24, 64])
def test_inference_steps_may_differ_from_trained_H(num_steps):
    mapper = rtm_mapper(num_steps=3).eval()
    with torch.no_grad():
        w = mapper(torch.randn(2, 16), num_steps)
    assert w.shape == (2, 16) and torch.isfinite(w).all()


def test_mlp_is_one_pass_then_a_fixed_point():
    mapper = MLPMapper(tiny("mlp").mapper)
    z = torch.randn(2, 16)
    state0 = mapper.init_state(z)
    assert torch.equal(mapper.readout(state0), torch.zeros(2, 16))
    one = mapper.step(state0)
    torch.testing.assert_close(mapper.readout(one), mapper.net(z))
    assert torch.equal(mapper.step(one).z_H, one.z_H)
    assert mapper.num_steps == 1


def test_mlp_default_is_rs_imle_and_stylegan2_is_a_recipe():
    from rtm_core.config import stylegan2_mapping
    from rtm_core.mapper import ScaledLeakyReLU

    mapper = MLPMapper(MapperConfig(kind="mlp"))
    linears = [m for m in mapper.net if type(m) is torch.nn.Linear]
    assert len(linears) == 8 and all((m.bias == 0).all() for m in linears)
    # He init for leaky ReLU 0.2: weight std sqrt(2 / (1.04 fan_in))
    assert linears[1].weight.std().item() == pytest.approx((2 / (1.04 * 512)) ** 0.5, rel=0.05)
    acts = [m for m in mapper.net if isinstance(m, ScaledLeakyReLU)]
    assert len(acts) == 8 and all(a.gain == 1 for a in acts)
    sg2 = MLPMapper(MapperConfig(**stylegan2_mapping()))
    equalized = [m for m in sg2.net if m.__class__.__name__ == "EqualLinear"]
    assert len(equalized) == 8 and all(m.bias_gain == 0.01 for m in equalized)
    assert all(a.gain == pytest.approx(2 ** 0.5) for a in sg2.net if isinstance(a, ScaledLeakyReLU))
    # the point of the gain: the scale of w survives 8 layers (without it, it shrinks ~0.7x a layer)
    z = torch.randn(256, 512)
    assert 0.5 < sg2(z).square().mean().sqrt().item() < 2.0


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_bad_num_steps_is_a_value_error(bad):
    with pytest.raises(ValueError, match="num_steps"):
        rtm_mapper()(torch.randn(1, 16), bad)


@pytest.mark.parametrize("z", [torch.randn(16), torch.randn(2, 15), torch.randn(2, 16, 1),
                               torch.zeros(2, 16, dtype=torch.long)])
def test_bad_z_is_a_value_error(z):
    for kind in ("rtm", "mlp"):
        with pytest.raises(ValueError, match="z must be"):
            build_mapper(tiny(kind).mapper).init_state(z)


def test_wrong_kind_is_refused():
    with pytest.raises(ValueError, match="kind='rtm'"):
        RecursiveMapper(tiny("mlp").mapper)
    with pytest.raises(ValueError, match="kind='mlp'"):
        MLPMapper(tiny("rtm").mapper)


def test_mlp_run_for_more_steps_than_grad_steps_still_has_a_gradient():
    """The MLP computes at its first step only; later steps are its fixed point. Run for 4 steps
    with grad_steps 1, its w must still carry the gradient of that first step."""
    mapper = build_mapper(tiny("mlp").mapper)
    w = mapper(torch.randn(3, 16), num_steps=4)
    assert w.requires_grad
    w.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mapper.parameters())


def test_unit_injection_starts_at_the_states_scale():
    """TRM scales its embedding so the injection is as large as the states it is added to;
    torch's Linear init left x at RMS ~0.58. Measured on the app's mapper, 512 seeds."""
    from rtm_core.metrics import w_spread

    z = torch.randn(512, 512, generator=torch.Generator().manual_seed(1))
    spread = {}
    for injection in ("unit", "torch"):
        torch.manual_seed(0)
        mapper = build_mapper(MapperConfig(injection=injection)).eval()
        with torch.no_grad():
            x = mapper.init_state(z).x
            spread[injection] = {h: w_spread(mapper(z, h)) for h in (1, 8)}
        rms = float(x.square().mean().sqrt())
        assert (0.95 < rms < 1.05) if injection == "unit" else (0.5 < rms < 0.65)
    # More of the seed reaches w after one step; the fixed start states still dominate at H = 1
    # (docs/ARCHITECTURE.md gives the figures; state_init="input" removes that too).
    assert spread["unit"][1] > 1.3 * spread["torch"][1] and spread["unit"][8] > 0.9


def test_rtm_with_equalized_layers_and_a_learning_rate_multiplier():
    """--mapper.rtm-layer equalized --mapper.lr-multiplier 0.01: RTM's dense layers learn as
    StyleGAN2's mapping does. The same Adam step moves their effective weights 100x less than
    at multiplier 1 (relative to their scale), and the state dict keeps its names."""
    from rtm_core.config import MapperConfig
    from rtm_core.mapper import RecursiveMapper

    def one_step(lr_mul):
        torch.manual_seed(0)
        m = RecursiveMapper(MapperConfig(z_dim=16, w_dim=16, num_tokens=4, token_dim=8, num_steps=2,
                                         rtm_layer="equalized", lr_multiplier=lr_mul))
        before = m.embed.weight.detach() * m.embed.weight_gain
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        m(torch.randn(8, 16)).square().mean().backward()
        opt.step()
        after = m.embed.weight.detach() * m.embed.weight_gain
        return m, ((after - before).norm() / before.norm()).item(), before
    slow, slow_change, slow_w = one_step(0.01)
    fast, fast_change, fast_w = one_step(1.0)
    assert fast_change / slow_change == pytest.approx(100, rel=0.05)
    torch.testing.assert_close(slow_w, fast_w)          # the same function at initialisation
    plain = RecursiveMapper(MapperConfig(z_dim=16, w_dim=16, num_tokens=4, token_dim=8, num_steps=2))
    assert set(plain.state_dict()) == set(slow.state_dict())
    with pytest.raises(ValueError, match="rtm_layer='equalized'"):
        MapperConfig(lr_multiplier=0.01)
