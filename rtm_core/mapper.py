"""Mapping networks z -> w, behind one state-machine interface.

    state = mapper.init_state(z)      # step 0: nothing refined yet
    state = mapper.step(state)        # one outer step, pure: returns a new state
    w = mapper.readout(state)         # the style after that many steps

`RecursiveMapper` is RTM (arXiv 2605.15309): z becomes T latent tokens that one shared
block refines for H outer steps of L inner cycles, with TRM's two states z_H (slow) and
z_L (fast). `MLPMapper` is the one-pass baseline (RS-IMLE's or StyleGAN2's mapping
network, by config) under the same interface:
its single step is the whole network, and further steps leave the state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import MapperConfig
from .layers import EqualLinear, PixelNorm, RMSNorm, SwiGLU, count_parameters, dense


@dataclass(frozen=True)
class MapperState:
    """Everything one step needs; `step` counts outer steps taken so far."""

    x: torch.Tensor                   # input injection: RTM (B, T, d); MLP (B, z_dim) normalised z
    z_H: torch.Tensor                 # slow state, read out as w: RTM (B, T, d); MLP (B, w_dim)
    z_L: Optional[torch.Tensor]       # fast state (B, T, d); None for the MLP
    step: int = 0


def _check_z(z: torch.Tensor, z_dim: int) -> None:
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != z_dim:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must be a tensor of shape (batch, {z_dim}), got {shape}")
    if not z.is_floating_point():
        raise ValueError(f"z must be a floating-point tensor, got dtype {z.dtype}")


def check_num_steps(num_steps: object, name: str = "num_steps") -> int:
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {num_steps!r}")
    return num_steps


class MixerLayer(nn.Module):
    """Token mixing then channel mixing, each a SwiGLU with a residual and a post-RMSNorm.

    Post-norm (TRM's choice) fixes the scale of the state after every call of the block,
    so applying it more times than it was trained for cannot make the state grow.
    """

    def __init__(self, num_tokens: int, token_dim: int, expansion: float, lr_mul: Optional[float] = None):
        super().__init__()
        self.token_mix = SwiGLU(num_tokens, max(1, round(expansion * num_tokens)), lr_mul)
        self.token_norm = RMSNorm(token_dim)
        self.channel_mix = SwiGLU(token_dim, max(1, round(expansion * token_dim)), lr_mul)
        self.channel_norm = RMSNorm(token_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:              # (B, T, d)
        mixed = self.token_mix(h.transpose(1, 2)).transpose(1, 2)     # mix along T
        h = self.token_norm(h + mixed)
        return self.channel_norm(h + self.channel_mix(h))


class RecursiveMapper(nn.Module):
    """RTM: refine T latent tokens with one shared block, H outer x L inner steps."""

    computing_steps = None  # every step computes

    def __init__(self, config: MapperConfig):
        super().__init__()
        if config.kind != "rtm":
            raise ValueError(f"RecursiveMapper needs MapperConfig.kind='rtm', got {config.kind!r}")
        self.config = config
        T, d = config.num_tokens, config.token_dim
        self.norm_z = PixelNorm()
        lr_mul = config.lr_multiplier if config.rtm_layer == "equalized" else None
        self.embed = dense(config.z_dim, T * d, lr_mul=lr_mul)             # z -> T tokens of width d
        if config.injection == "unit" and lr_mul is None:   # (equalized layers start at unit scale already)
            # x is added to unit-RMS states at every inner cycle: start it at unit RMS too (TRM
            # scales its embedding so). torch's init gives RMS ~0.58, which left H = 1 with a
            # third of H = 8's seed spread of w at initialisation.
            nn.init.normal_(self.embed.weight, std=config.z_dim ** -0.5)
            nn.init.zeros_(self.embed.bias)
        self.pos_emb = nn.Parameter(torch.randn(T, d) * 0.02)
        self.block = nn.Sequential(*[MixerLayer(T, d, config.expansion, lr_mul) for _ in range(config.block_layers)])
        self.readout_proj = dense(T * d, config.w_dim, lr_mul=lr_mul)
        # Fixed starting states shared by every seed (TRM): buffers, saved with the weights.
        init = torch.Generator().manual_seed(0)
        self.register_buffer("z_H_init", torch.randn(T, d, generator=init))
        self.register_buffer("z_L_init", torch.randn(T, d, generator=init))

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def num_parameters(self) -> int:
        return count_parameters(self)

    def init_state(self, z: torch.Tensor) -> MapperState:
        _check_z(z, self.config.z_dim)
        B, T, d = z.shape[0], self.config.num_tokens, self.config.token_dim
        x = self.embed(self.norm_z(z)).view(B, T, d) + self.pos_emb      # (B, T, d)
        z_L = self.z_L_init.expand(B, T, d)
        z_H = x if self.config.state_init == "input" else self.z_H_init.expand(B, T, d)
        return MapperState(x=x, z_H=z_H, z_L=z_L, step=0)

    def step(self, state: MapperState) -> MapperState:
        """One outer step: L updates of the fast state, then one of the slow state."""
        z_L, z_H = state.z_L, state.z_H
        for _ in range(self.config.num_cycles):
            z_L = self.block(z_L + z_H + state.x)
        z_H = self.block(z_H + z_L)
        return replace(state, z_H=z_H, z_L=z_L, step=state.step + 1)

    def readout(self, state: MapperState) -> torch.Tensor:
        return self.readout_proj(state.z_H.flatten(1))                 # (B, T*d) -> (B, w_dim)

    def forward(self, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
        return run_mapper(self, z, num_steps)


class ScaledLeakyReLU(nn.Module):
    """leaky_relu(x, 0.2) * gain; StyleGAN2 uses gain sqrt(2) so every layer keeps the scale."""

    def __init__(self, gain: float):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(x, 0.2)
        return x * self.gain if self.gain != 1 else x


def _linear(fan_in: int, fan_out: int, init: str) -> nn.Linear:
    """A torch Linear with zero bias (RS-IMLE zeroes it) and weights "torch" (torch's default,
    RS-IMLE's code: shrinks the signal ~2.4x per layer here, so after 8 layers the styles of
    different seeds differ by ~0.0005) or "he" (He init for leaky ReLU 0.2: keeps the scale)."""
    layer = nn.Linear(fan_in, fan_out)
    if init == "he":
        nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
    nn.init.zeros_(layer.bias)
    return layer


class MLPMapper(nn.Module):
    """One-pass mapping network: PixelNorm, then N x (linear, leaky ReLU 0.2 [x gain]).

    Defaults: RS-IMLE's mapper (torch Linear, gain 1, full learning rate). With equalized
    layers, mlp_gain = sqrt(2) and lr_multiplier = 0.01 it is StyleGAN2's
    (rtm_core.config.stylegan2_mapping()).
    """

    computing_steps = 1  # the first step is the whole network; later steps return the state unchanged

    def __init__(self, config: MapperConfig):
        super().__init__()
        if config.kind != "mlp":
            raise ValueError(f"MLPMapper needs MapperConfig.kind='mlp', got {config.kind!r}")
        self.config = config
        widths = [config.z_dim] + [config.mlp_width] * (config.mlp_layers - 1) + [config.w_dim]
        layers: list[nn.Module] = [PixelNorm()]
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            # An equalized layer stores its weights at unit scale, so the same Adam step changes the
            # function ~sqrt(fan_in) times less than a torch Linear's: not a fair IMLE baseline.
            layers.append(EqualLinear(fan_in, fan_out, lr_mul=config.lr_multiplier) if config.mlp_layer == "equalized"
                          else _linear(fan_in, fan_out, config.mlp_init))
            layers.append(ScaledLeakyReLU(config.mlp_gain))
        self.net = nn.Sequential(*layers)

    @property
    def num_steps(self) -> int:
        return 1

    def num_parameters(self) -> int:
        return count_parameters(self)

    def init_state(self, z: torch.Tensor) -> MapperState:
        _check_z(z, self.config.z_dim)
        # Step 0 reads out w = 0: like RTM's fixed start, a point that no seed has moved yet.
        z_H = z.new_zeros(z.shape[0], self.config.w_dim)
        return MapperState(x=z, z_H=z_H, z_L=None, step=0)

    def step(self, state: MapperState) -> MapperState:
        # One pass is the whole computation; later steps are a fixed point.
        z_H = self.net(state.x) if state.step == 0 else state.z_H
        return replace(state, z_H=z_H, step=state.step + 1)

    def readout(self, state: MapperState) -> torch.Tensor:
        return state.z_H

    def forward(self, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
        return run_mapper(self, z, num_steps)


def run_mapper(mapper: nn.Module, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
    """z -> w by looping `step`. The short-gradient rule lives here and only here.

    Only the last `grad_steps` outer steps are differentiated; the earlier ones run under
    no_grad, so their outputs enter the graph as constants (TRM's 1-step gradient) and
    activation memory does not grow with the number of steps.
    """
    num_steps = mapper.num_steps if num_steps is None else check_num_steps(num_steps)
    first_grad_step = num_steps - mapper.config.grad_steps
    if mapper.computing_steps is not None:  # later steps are a fixed point: the gradient lives in the last computing one
        first_grad_step = min(first_grad_step, mapper.computing_steps - 1)
    state = mapper.init_state(z)
    for i in range(num_steps):
        with torch.set_grad_enabled(torch.is_grad_enabled() and i >= first_grad_step):
            state = mapper.step(state)
    return mapper.readout(state)


def build_mapper(config: MapperConfig) -> nn.Module:
    return RecursiveMapper(config) if config.kind == "rtm" else MLPMapper(config)
