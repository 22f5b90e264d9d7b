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
to this rank's images (`rows`), so 1 process and N ranks augment each image the same way. On a
GPU the generator lives on the device (train.imle.stream), so nothing is drawn on the host.
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
    """Drawn on the generator's device (the images' on a GPU: train.imle.stream(device=...))."""
    return torch.rand(n, *shape, generator=gen, device=gen.device)[rows].to(device)


def color(x, gen, n, rows):
    brightness = _rand(gen, n, rows, 1, 1, 1, device=x.device) - 0.5
    saturation = _rand(gen, n, rows, 1, 1, 1, device=x.device) * 2
    contrast = _rand(gen, n, rows, 1, 1, 1, device=x.device) + 0.5
    x = x + brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _randint(gen: torch.Generator, n: int, rows, low: int, high: int, device) -> torch.Tensor:
    """(b,) integers uniform in [low, high), drawn for the global batch like _rand."""
    return torch.randint(low, high, (n,), generator=gen, device=gen.device)[rows].to(device)


def translation(x, gen, n, rows, ratio: float = 0.125):
    """Shift each image by whole pixels, uniform in [-s, s] per axis (s = 1/8 of the side,
    rounded: 4 at 32 px), filling with zeros: out[i, j] = x[i + dy, j + dx] where that is
    inside, as the reference's rand_translation. An index gather, so it is differentiable."""
    B, _, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = _randint(gen, n, rows, -sy, sy + 1, x.device)
    dx = _randint(gen, n, rows, -sx, sx + 1, x.device)
    # Index a copy padded with one zero row/column each side; out-of-range indices land on it.
    ys = (torch.arange(H, device=x.device)[None, :] + dy[:, None] + 1).clamp(0, H + 1)   # (B, H)
    xs = (torch.arange(W, device=x.device)[None, :] + dx[:, None] + 1).clamp(0, W + 1)   # (B, W)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, ys[:, :, None], xs[:, None, :]].permute(0, 3, 1, 2)


def cutout(x, gen, n, rows, ratio: float = 0.5):
    """Zero a square of half the side (rounded: 16 x 16 at 32 px) placed uniformly, as the
    reference's rand_cutout: its centre row/column o is uniform in [0, R] for an even size
    ([0, R - 1] for odd), it covers o - size//2 ... o - size//2 + size - 1, cut at the border."""
    B, _, H, W = x.shape
    size = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = _randint(gen, n, rows, 0, H + (1 - size[0] % 2), x.device)
    cx = _randint(gen, n, rows, 0, W + (1 - size[1] % 2), x.device)
    ys = torch.arange(H, device=x.device)[None, :, None] - (cy[:, None, None] - size[0] // 2)
    xs = torch.arange(W, device=x.device)[None, None, :] - (cx[:, None, None] - size[1] // 2)
    inside = (ys >= 0) & (ys < size[0]) & (xs >= 0) & (xs < size[1])
    return x * (~inside)[:, None].to(x.dtype)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}
