"""Shared building blocks: normalisations, SwiGLU, equalized-lr linear, modulated conv.

Names follow StyleGAN2 (EqualLinear, ModulatedConv2d, ToRGB) and TRM (RMSNorm, SwiGLU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODCONV_IMPLS = ("auto", "scaled", "grouped")


class PixelNorm(nn.Module):
    """Scale each vector to unit RMS over its last axis (StyleGAN's normalisation of z)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + 1e-8)


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) over the last axis. `lr_mul` None: torch Linear layers;
    a number: equalized layers with that learning-rate multiplier."""

    def __init__(self, dim: int, hidden: int, lr_mul: float | None = None):
        super().__init__()
        self.gate_up = dense(dim, 2 * hidden, bias=False, lr_mul=lr_mul)  # gate and up in one matmul
        self.down = dense(hidden, dim, bias=False, lr_mul=lr_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def dense(in_features: int, out_features: int, bias: bool = True, lr_mul: float | None = None) -> nn.Module:
    """torch's Linear (lr_mul None) or an equalized one with that learning-rate multiplier."""
    if lr_mul is None:
        return nn.Linear(in_features, out_features, bias=bias)
    return EqualLinear(in_features, out_features, bias=bias, lr_mul=lr_mul)


class EqualLinear(nn.Module):
    """Linear layer with the equalized learning rate of StyleGAN.

    Weights are stored as N(0, 1/lr_mul^2) and scaled at run time, so Adam's per-parameter
    step sizes are the same for every layer; lr_mul < 1 slows a layer down (the mapping MLP
    uses 0.01).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.bias_gain if self.bias is not None else None
        return F.linear(x, self.weight * self.weight_gain, bias)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's style-modulated convolution with weight demodulation.

    Per sample b the effective kernel is  W_b[o,i] = W[o,i] * s[b,i] * d[b,o]  with
    d[b,o] = 1 / sqrt(sum_i,k (W[o,i,k] * s[b,i])^2). Two equal ways to compute it:

    - "grouped": build every W_b and run one grouped conv with groups=batch.
    - "scaled":  scale the activations by s, run ONE shared conv, scale the outputs by d.
      No per-sample kernels and no grouped conv. On this project's 2-core CPU the
      grouped conv got ~9x slower for 2x the channels, the scaled form does not
      (bench/bench_core.py measures both).

    "auto" takes "scaled" on CPU and in training, and "grouped" for CUDA inference, where
    StyleGAN2 found the fused grouped kernel faster; set `impl` to force one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.padding = kernel_size // 2
        self.demodulate = demodulate
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # style starts at 1
        self.impl = "auto"

    def resolve_impl(self, x: torch.Tensor) -> str:
        if self.impl not in MODCONV_IMPLS:
            raise ValueError(f"ModulatedConv2d.impl must be one of {MODCONV_IMPLS}, got {self.impl!r}")
        if self.impl != "auto":
            return self.impl
        return "grouped" if x.device.type == "cuda" and not self.training else "scaled"

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        styles = self.affine(w)                                   # (B, in)
        weight = self.weight * self.weight_gain                   # (out, in, k, k)
        if self.resolve_impl(x) == "scaled":
            x = x * styles[:, :, None, None].to(x.dtype)
            if weight.shape[-1] == 1:
                # A 1x1 conv (ToRGB) as one matmul per image: the same function, and on a CPU
                # each image's result does not depend on how many are in the batch (the conv
                # kernel's does, below 16 images), so the app pads its batches to 4 rows, not 16.
                x = (weight[:, :, 0, 0].to(x.dtype) @ x.flatten(2)).unflatten(2, x.shape[2:])
            else:
                x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
            if self.demodulate:
                # sum_i,k (W[o,i,k] s[b,i])^2 = (s^2 @ sum_k W^2 over kernel taps)[b,o]
                demod = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)
                x = x * demod[:, :, None, None].to(x.dtype)       # (B, out, 1, 1)
            return x
        w_b = weight[None] * styles[:, None, :, None, None]      # (B, out, in, k, k)
        if self.demodulate:
            w_b = w_b * torch.rsqrt(w_b.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, batch * self.in_channels, *x.shape[2:])  # (1, B*in, H, W)
        w_b = w_b.reshape(batch * self.out_channels, self.in_channels, *w_b.shape[3:])
        x = F.conv2d(x, w_b.to(x.dtype), padding=self.padding, groups=batch)
        return x.reshape(batch, self.out_channels, *x.shape[2:])


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise times a learned strength (starts at 0).

    In training the noise is fresh for every image; in eval mode it is one fixed map per layer
    (StyleGAN2's noise_mode="const"), drawn from the layer's own seed, so that a seed is still
    one image in the app and in evaluation. No buffer: checkpoints stay as they were."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.seed = seed
        self._fixed: dict[tuple, torch.Tensor] = {}   # eval's map per (size, device, dtype): drawn once, not saved

    def fixed_noise(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape[2:]), x.device, x.dtype)
        if key not in self._fixed:
            fixed = torch.Generator().manual_seed(self.seed)
            self._fixed[key] = torch.randn(1, 1, *x.shape[2:], generator=fixed).to(x.device, x.dtype)
        return self._fixed[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed_noise(x)
        return x + noise * self.strength


class StyledConv(nn.Module):
    """ModulatedConv2d -> optional noise -> bias -> leaky ReLU (gain sqrt 2), as StyleGAN2."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, noise: bool, noise_seed: int = 0):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.noise = NoiseInjection(noise_seed) if noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        if self.noise is not None:
            x = self.noise(x)
        return F.leaky_relu(x + self.bias[:, None, None], 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, features -> image channels."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[:, None, None]


def set_modconv_impl(module: nn.Module, impl: str) -> None:
    """Force every ModulatedConv2d under `module` to one implementation."""
    if impl not in MODCONV_IMPLS:
        raise ValueError(f"impl must be one of {MODCONV_IMPLS}, got {impl!r}")
    for m in module.modules():
        if isinstance(m, ModulatedConv2d):
            m.impl = impl


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
