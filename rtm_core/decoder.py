"""Synthesis networks w -> image in about [-1, 1] (NCHW; never clamped here: to_uint8 clamps for display).

`StyleGAN2Decoder`: constant 4x4 input, two modulated 3x3 convs per resolution with
weight demodulation, ToRGB at every resolution summed through upsampling skips.
Upsampling is bilinear instead of StyleGAN2's FIR-filtered transposed conv (simpler,
no custom kernels; the skip architecture is unchanged).

`IMLEDecoder`: the RS-IMLE decoder: a learned constant, then residual bottleneck blocks
each preceded by AdaIN from w, nearest upsampling between resolutions, as laid out by
the block spec string.

Both take w of shape (B, w_dim), broadcast to every layer, or (B, num_ws, w_dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig, parse_block_spec
from .layers import AdaIN, StyledConv, ToRGB, count_parameters


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
        self.conv4 = StyledConv(ch(4), ch(4), w_dim, config.noise)
        self.torgb4 = ToRGB(ch(4), config.img_channels, w_dim)
        self.blocks = nn.ModuleList()
        for res in (2 ** i for i in range(3, log2 + 1)):
            block = nn.Module()
            block.conv0 = StyledConv(ch(res // 2), ch(res), w_dim, config.noise)
            block.conv1 = StyledConv(ch(res), ch(res), w_dim, config.noise)
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


class ResBlock(nn.Module):
    """AdaIN(w), then x + bottleneck(x): GELU, 1x1, GELU, 3x3, GELU, 3x3, GELU, 1x1 at width/4."""

    def __init__(self, channels: int, w_dim: int, num_blocks_total: int):
        super().__init__()
        mid = max(1, channels // 4)
        self.adain = AdaIN(channels, w_dim)
        self.c1 = nn.Conv2d(channels, mid, 1)
        self.c2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.c3 = nn.Conv2d(mid, mid, 3, padding=1)
        self.c4 = nn.Conv2d(mid, channels, 1)
        # VDVAE-style: shrink the last conv so a deep stack starts near the identity.
        with torch.no_grad():
            self.c4.weight.mul_(math.sqrt(1.0 / num_blocks_total))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.adain(x, w)
        h = self.c1(F.gelu(x))
        h = self.c2(F.gelu(h))
        h = self.c3(F.gelu(h))
        return x + self.c4(F.gelu(h))


class IMLEDecoder(nn.Module):
    """RS-IMLE decoder built from a block spec such as '1x2,4m1,4x2,8m4,8x2'."""

    def __init__(self, config: DecoderConfig, w_dim: int):
        super().__init__()
        self.config, self.w_dim = config, w_dim
        spec = parse_block_spec(config.block_spec)
        ch = config.channels_at
        self.num_ws = sum(arg for _, op, arg in spec if op == "x")
        start = spec[0][0]
        self.const = nn.Parameter(torch.randn(ch(start), start, start))
        self.layers = nn.ModuleList()
        # Parallel to self.layers: ("x", res) for a ResBlock, ("m", res) for an upsample to res.
        self.ops: list[tuple[str, int]] = []
        for res, op, arg in spec:
            if op == "x":
                for _ in range(arg):
                    self.layers.append(ResBlock(ch(res), w_dim, self.num_ws))
                    self.ops.append(("x", res))
            else:
                # Nearest upsample to `res`, then a 1x1 conv when the channel count changes.
                change = nn.Conv2d(ch(arg), ch(res), 1) if ch(arg) != ch(res) else nn.Identity()
                self.layers.append(change)
                self.ops.append(("m", res))
        self.to_rgb = nn.Conv2d(ch(config.img_resolution), config.img_channels, 1)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        ws = _per_layer_ws(w, self.w_dim, self.num_ws).unbind(1)
        x = self.const[None].expand(ws[0].shape[0], -1, -1, -1)
        style = iter(ws)
        for (op, res), layer in zip(self.ops, self.layers):
            if op == "x":
                x = layer(x, next(style))
            else:
                x = layer(F.interpolate(x, size=(res, res), mode="nearest"))
        return self.to_rgb(x)


def build_decoder(config: DecoderConfig, w_dim: int) -> nn.Module:
    return StyleGAN2Decoder(config, w_dim) if config.kind == "stylegan2" else IMLEDecoder(config, w_dim)
