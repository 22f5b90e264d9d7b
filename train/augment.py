"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout, applied to
real and generated images alike before the discriminator sees them.

Why DiffAugment and not ADA: our adversarial runs are on ~100-image sets for tens of
minutes of CPU, where the discriminator memorises the data within a few hundred steps.
DiffAugment was shown on exactly this few-shot regime (100-shot sets), needs no adaptive
probability controller (whose target, r_t = 0.6, is measured over thousands of images) and
is a few lines of tensor code, so it works the same on CPU, CUDA and under DDP. Because it
is differentiable, the generator's gradient passes through it; the augmented images are
never shown, so it does not leak into the samples.

Randomness comes from a `torch.Generator` and is drawn for the *global* batch, then sliced
to this rank's images (`rows`), so 1 process and N ranks augment each image the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F



def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator, global_batch: int,
                 rows: slice | torch.Tensor) -> torch.Tensor:
    """Augment (b, C, R, R) images, the `rows` of a global batch of `global_batch`."""
    if policy == "none":
        return x
    for name in policy.split(","):
        x = AUGMENTS[name](x, gen, global_batch, rows)
    return x


def _rand(gen: torch.Generator, n: int, rows, *shape: int, device) -> torch.Tensor:
    return torch.rand(n, *shape, generator=gen)[rows].to(device)


def color(x, gen, n, rows):
    brightness = _rand(gen, n, rows, 1, 1, 1, device=x.device) - 0.5
    saturation = _rand(gen, n, rows, 1, 1, 1, device=x.device) * 2
    contrast = _rand(gen, n, rows, 1, 1, 1, device=x.device) + 0.5
    x = x + brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def translation(x, gen, n, rows, ratio: float = 0.125):
    """Shift by up to 1/8 of the side, padding with zeros (a grid_sample, so it is differentiable)."""
    B, _, H, W = x.shape
    shift = (_rand(gen, n, rows, 2, device=x.device) * 2 - 1) * ratio * 2   # in [-1, 1] grid units
    theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x, gen, n, rows, ratio: float = 0.5):
    """Zero a square of half the side at a random place."""
    B, _, H, W = x.shape
    size = int(H * ratio + 0.5), int(W * ratio + 0.5)
    centre = _rand(gen, n, rows, 2, device=x.device)
    cy = (centre[:, 0] * (H + 1 - size[0] % 2)).long()
    cx = (centre[:, 1] * (W + 1 - size[1] % 2)).long()
    ys = torch.arange(H, device=x.device)[None, :, None]
    xs = torch.arange(W, device=x.device)[None, None, :]
    inside = ((ys - cy[:, None, None]).abs() < size[0] / 2) & ((xs - cx[:, None, None]).abs() < size[1] / 2)
    return x * (~inside)[:, None].to(x.dtype)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}
