"""Synthesis networks w -> image in about [-1, 1] (NCHW; never clamped here: to_uint8 clamps for display).

`StyleGAN2Decoder`: constant 4x4 input, two modulated 3x3 convs per resolution with
weight demodulation, ToRGB at every resolution summed through upsampling skips.
Upsampling is bilinear instead of StyleGAN2's FIR-filtered transposed conv (simpler,
no custom kernels; the skip architecture is unchanged).

`IMLEDecoder`: RS-IMLE's decoder, as its authors' code builds it: a learned constant, then
blocks of AdaIN from w + a residual bottleneck, nearest upsampling where the block spec
string says, one width throughout, a 1x1 conv to RGB with a learned gain and bias.

Both take w of shape (B, w_dim), broadcast to every layer, or (B, num_ws, w_dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig, imle_num_blocks, parse_block_spec
from .layers import StyledConv, ToRGB, count_parameters


def _per_layer_ws(w: torch.Tensor, w_dim: int, num_ws: int) -> torch.Tensor:
    """(B, w_dim) or (B, num_ws, w_dim) -> (B, num_ws, w_dim)."""
    if w.ndim == 2 and w.shape[1] == w_dim:
        return w[:, None, :].expand(-1, num_ws, -1)
    if w.ndim == 3 and w.shape[1:] == (num_ws, w_dim):
        return w
    raise ValueError(f"w must have shape (batch, {w_dim}) or (batch, {num_ws}, {w_dim}), got {tuple(w.shape)}")


class StyleGAN2Decoder(nn.Module):
    """StyleGAN2 synthesis network, skip architecture."""

    def __init__(self, config: DecoderConfig, w_dim: int):
        super().__init__()
        self.config, self.w_dim = config, w_dim
        ch = config.channels_at
        log2 = int(math.log2(config.img_resolution))
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        self.conv4 = StyledConv(ch(4), ch(4), w_dim, config.noise, noise_seed=0)
        self.torgb4 = ToRGB(ch(4), config.img_channels, w_dim)
        self.blocks = nn.ModuleList()
        for res in (2 ** i for i in range(3, log2 + 1)):
            block = nn.Module()
            block.conv0 = StyledConv(ch(res // 2), ch(res), w_dim, config.noise, noise_seed=2 * len(self.blocks) + 1)
            block.conv1 = StyledConv(ch(res), ch(res), w_dim, config.noise, noise_seed=2 * len(self.blocks) + 2)
            block.torgb = ToRGB(ch(res), config.img_channels, w_dim)
            self.blocks.append(block)
        self.num_ws = 2 * log2 - 2

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        ws = _per_layer_ws(w, self.w_dim, self.num_ws).unbind(1)
        x = self.const[None].expand(ws[0].shape[0], -1, -1, -1)
        x = self.conv4(x, ws[0])
        img = self.torgb4(x, ws[1])
        for i, block in enumerate(self.blocks):
            w0, w1, w2 = ws[1 + 2 * i], ws[2 + 2 * i], ws[3 + 2 * i]  # ToRGB shares the next conv's w
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = block.conv1(block.conv0(x, w0), w1)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + block.torgb(x, w2)
        return img


class IMLEAdaIN(nn.Module):
    """RS-IMLE's adaptive instance norm: instance norm (eps 1e-2, skipped on a 1-wide map,
    where it would be 0 and starve the learned constant of gradient), then gamma * x + beta
    from w by a torch Linear whose bias starts gamma at 1 and beta at 0."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.style = nn.Linear(w_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(w)[:, :, None, None].chunk(2, dim=1)
        if x.shape[3] > 1:
            x = F.instance_norm(x, eps=1e-2)
        return gamma * x + beta


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.bias)   # RS-IMLE (VDVAE) zeroes every conv bias
    return conv


class DecBlock(nn.Module):
    """One RS-IMLE decoder block: [nearest upsample], AdaIN(w), then x + bottleneck(x) with
    GELU, 1x1, GELU, kxk, GELU, kxk, GELU, 1x1 at width/4 (k = 3, or 1 on maps of 2 px or less)."""

    def __init__(self, width: int, w_dim: int, resolution: int, upsample: bool, num_blocks: int):
        super().__init__()
        self.resolution, self.upsample = resolution, upsample
        mid, k = max(1, int(width * 0.25)), (3 if resolution > 2 else 1)
        self.adain = IMLEAdaIN(width, w_dim)
        self.c1, self.c2, self.c3, self.c4 = _conv(width, mid, 1), _conv(mid, mid, k), _conv(mid, mid, k), _conv(mid, width, 1)
        with torch.no_grad():   # a deep stack starts near the identity
            self.c4.weight.mul_(math.sqrt(1.0 / num_blocks))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="nearest")
        x = self.adain(x, w)
        h = self.c1(F.gelu(x))
        h = self.c2(F.gelu(h))
        h = self.c3(F.gelu(h))
        return x + self.c4(F.gelu(h))


class IMLEDecoder(nn.Module):
    """RS-IMLE's decoder (Vashist et al. 2024, after VDVAE), built from a block spec such as
    '1x4,4m1,4x4,8m4,8x4': a learned constant, then one DecBlock per 'RmS' entry and N per
    'RxN' entry, all `channel_max` wide; a 1x1 conv to RGB, then a learned gain and bias."""

    def __init__(self, config: DecoderConfig, w_dim: int):
        super().__init__()
        self.config, self.w_dim = config, w_dim
        spec = parse_block_spec(config.block_spec)
        width = config.channel_max
        self.num_ws = imle_num_blocks(config.block_spec)
        start = spec[0][0]
        self.const = nn.Parameter(torch.randn(width, start, start))
        self.blocks = nn.ModuleList()
        for res, op, arg in spec:
            for _ in range(arg if op == "x" else 1):
                self.blocks.append(DecBlock(width, w_dim, res, upsample=(op == "m"), num_blocks=self.num_ws))
        self.to_rgb = _conv(width, config.img_channels, 1)
        self.gain = nn.Parameter(torch.ones(config.img_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(config.img_channels, 1, 1))

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        ws = _per_layer_ws(w, self.w_dim, self.num_ws).unbind(1)
        x = self.const[None].expand(ws[0].shape[0], -1, -1, -1)
        for block, w_i in zip(self.blocks, ws):
            x = block(x, w_i)
        return self.gain * self.to_rgb(x) + self.bias


def build_decoder(config: DecoderConfig, w_dim: int) -> nn.Module:
    return StyleGAN2Decoder(config, w_dim) if config.kind == "stylegan2" else IMLEDecoder(config, w_dim)
