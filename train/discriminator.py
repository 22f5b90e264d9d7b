"""StyleGAN2's residual discriminator, written for this project (not NVIDIA's code).

    fromRGB (1x1) -> residual blocks, each halving the resolution -> epilogue at 4x4:
    minibatch stddev, 3x3 conv, dense, dense -> one logit per image

Every conv and dense layer has StyleGAN's equalized learning rate (weights stored at unit
scale, scaled at run time); activations are leaky ReLU 0.2 times sqrt(2). Downsampling
low-pass filters with the [1, 3, 3, 1] binomial kernel before taking every second pixel
(StyleGAN2's FIR filter), so the discriminator does not alias, with the reference's zero
padding (at 32 px the 4x4 and 8x8 maps are mostly border, where padding decides the values). A residual block's two paths
are summed and scaled by 1/sqrt(2) to keep the variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rtm_core.layers import EqualLinear


@dataclass(frozen=True)
class DiscriminatorConfig:
    img_resolution: int = 32        # the images it judges (the generator's)
    img_channels: int = 3
    channel_base: int = 1024        # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 128
    mbstd_group: int = 4            # minibatch-stddev group size (StyleGAN2: 4)

    def channels_at(self, resolution: int) -> int:
        return max(1, min(self.channel_base // resolution, self.channel_max))


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


class EqualConv2d(nn.Module):
    """Conv with equalized lr; `down` = 2 blurs with [1,3,3,1] and takes every second pixel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, down: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.down, self.padding = down, kernel_size // 2
        blur = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("blur", (blur[:, None] * blur[None, :] / blur.sum() ** 2)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down == 1:
            return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)
        # As StyleGAN2's conv2d_resample: zeros around, the depthwise low-pass, then
        # a 3x3 conv with stride 2 and no padding of its own (pad 2: 32 -> 33 -> 16), or for
        # the 1x1 skip every second pixel of the low-passed map (pad 1: 32 -> 31 -> 16).
        c, pad = x.shape[1], 2 if self.padding else 1
        x = F.conv2d(F.pad(x, (pad,) * 4), self.blur.expand(c, 1, 4, 4), groups=c)
        if self.padding:
            return F.conv2d(x, self.weight * self.gain, self.bias, stride=2)
        return F.conv2d(x[:, :, ::2, ::2], self.weight * self.gain, self.bias)


class DiscriminatorBlock(nn.Module):
    """conv 3x3 -> conv 3x3 down, plus a 1x1 down skip; sum / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=2)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = lrelu(self.conv1(lrelu(self.conv0(x))))
        return (self.skip(x) + y) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """StyleGAN2's extra feature map: the std of each feature over a group of images, averaged.
    Images i and j share a group when i % (B / G) == j % (B / G), as in StyleGAN2, so a batch
    split over ranks in strided shares forms the same groups as on one process."""
    B, C, H, W = x.shape
    G = min(group, B)
    while B % G:
        G -= 1
    y = x.reshape(G, -1, C, H, W)                       # (G, B/G, C, H, W): member g of group m is g * B/G + m
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()   # (B/G, C, H, W)
    y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1)      # (B/G, 1, 1, 1)
    return torch.cat([x, y.repeat(G, 1, H, W)], dim=1)  # (B, C + 1, H, W)


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        R = config.img_resolution
        self.from_rgb = EqualConv2d(config.img_channels, config.channels_at(R), 1)
        self.blocks = nn.ModuleList()
        res = R
        while res > 4:
            self.blocks.append(DiscriminatorBlock(config.channels_at(res), config.channels_at(res // 2)))
            res //= 2
        c4 = config.channels_at(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4)
        self.out = EqualLinear(c4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, C, R, R) images in about [-1, 1] -> (B,) logits: > 0 says real."""
        x = lrelu(self.from_rgb(img))
        for block in self.blocks:
            x = block(x)
        x = lrelu(self.conv(minibatch_stddev(x, self.config.mbstd_group)))
        return self.out(lrelu(self.fc(x.flatten(1)))).squeeze(1)
