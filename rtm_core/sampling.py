"""Seeds, and the stepping loop that yields every intermediate refinement step.

The model (mapper, decoder) lives elsewhere; this file only drives it, the way a
diffusers pipeline drives a UNet. Training previews, evaluation, benchmarks and the app
all read trajectories through `iter_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .generator import Generator
from .interventions import Intervention
from .mapper import MapperState, check_num_steps

MAX_SEED = 2**63 - 1  # torch.Generator takes 64-bit seeds; stay inside int64 for JSON and numpy


def _check_seed(seed: object) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """The noise vector (z_dim,) of one seed: float32 on the CPU, the same on every machine.

    Drawn with a CPU torch.Generator so that a seed is one image everywhere; move the
    result to the GPU afterwards instead of drawing there (CUDA's generator differs).
    """
    seed = _check_seed(seed)
    if not isinstance(z_dim, int) or isinstance(z_dim, bool) or z_dim < 1:
        raise ValueError(f"z_dim must be an integer >= 1, got {z_dim!r}")
    # device="cpu" explicitly, so a `with torch.device("cuda")` around the call changes nothing.
    return torch.randn(z_dim, generator=torch.Generator("cpu").manual_seed(seed), device="cpu")


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """(len(seeds), z_dim): row i is seed_to_z(seeds[i], z_dim)."""
    if isinstance(seeds, (int, np.integer)) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    return torch.stack([seed_to_z(s, z_dim) for s in seeds])


@dataclass(frozen=True)
class StepOutput:
    """The mapper after `step` outer steps (0 = initial state, nothing refined yet)."""

    step: int
    w: torch.Tensor                       # (B, w_dim)
    image: Optional[torch.Tensor]         # (B, C, R, R) in about [-1, 1]; None if not decoded
    state: MapperState                    # the full recursion state, for inspection


def _model_device(generator: Generator) -> torch.device:
    return next(generator.parameters()).device


@torch.no_grad()
def _start(generator: Generator, z: torch.Tensor) -> MapperState:
    return generator.mapping.init_state(z.to(_model_device(generator)))


def iter_steps(generator: Generator, z: torch.Tensor, num_steps: Optional[int] = None,
               decode: bool = True, intervene: Optional[Intervention] = None) -> Iterator[StepOutput]:
    """Yield StepOutput for steps 0, 1, ..., num_steps (num_steps + 1 items).

    num_steps defaults to the trained H but may be anything >= 1: the recursion is simply
    run for longer or shorter (inference-time compute). No gradients are taken.
    intervene(step, state) -> state, if given, is applied to every step's state before its
    readout, the next step starting from what it returns (rtm_core.interventions).
    """
    num_steps = generator.num_steps if num_steps is None else check_num_steps(num_steps)
    mapper = generator.mapping
    state = _start(generator, z)
    for h in range(num_steps + 1):
        # no_grad around each computation only: a `with` spanning the `yield` would switch
        # gradients off in the caller's code too while the generator is suspended.
        with torch.no_grad():
            if h > 0:
                state = mapper.step(state)
            if intervene is not None:
                state = intervene(h, state)
            w = mapper.readout(state)
            image = generator.synthesize(w) if decode else None
        yield StepOutput(step=h, w=w, image=image, state=state)


@dataclass(frozen=True)
class Trajectory:
    ws: torch.Tensor                      # (num_steps + 1, B, w_dim)
    images: Optional[torch.Tensor]        # (num_steps + 1, B, C, R, R) or None
    tokens: Optional[torch.Tensor] = None  # (num_steps + 1, B, T, d): RTM's slow state z_H, if asked for


def trajectory(generator: Generator, z: torch.Tensor, num_steps: Optional[int] = None,
               decode: bool = True, decode_batch: int = 64, tokens: bool = False,
               intervene: Optional[Intervention] = None) -> Trajectory:
    """Every step's w, and its image decoded in batches of `decode_batch` frames.

    Faster than decoding inside iter_steps: the mapper is cheap, and one decoder call on
    all frames at once uses the CPU far better than num_steps + 1 calls of batch B.
    tokens=True also keeps z_H after every step (RTM only; a one-pass MLP has no tokens: None).
    intervene: as in iter_steps.
    """
    if not isinstance(decode_batch, int) or decode_batch < 1:
        raise ValueError(f"decode_batch must be an integer >= 1, got {decode_batch!r}")
    steps = list(iter_steps(generator, z, num_steps, decode=False, intervene=intervene))
    ws = torch.stack([out.w for out in steps])
    z_H = torch.stack([out.state.z_H for out in steps]) if tokens and steps[0].state.z_H.ndim == 3 else None
    if not decode:
        return Trajectory(ws=ws, images=None, tokens=z_H)
    flat = ws.flatten(0, 1)                                              # (S*B, w_dim)
    with torch.no_grad():
        images = torch.cat([generator.synthesize(chunk) for chunk in flat.split(decode_batch)])
    return Trajectory(ws=ws, images=images.unflatten(0, ws.shape[:2]), tokens=z_H)  # images (S, B, C, R, R)


def sample(generator: Generator, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
    """Images (B, C, R, R) after num_steps refinement steps (default: the trained H)."""
    *_, last = iter_steps(generator, z, num_steps, decode=False)
    with torch.no_grad():
        return generator.synthesize(last.w)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, R, R) float in [-1, 1] -> (B, R, R, C) uint8, clamping what lies outside."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (batch, channels, height, width), got {tuple(images.shape)}")
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(pixels: np.ndarray) -> Image.Image:
    """uint8 (R, R, C) with C = 1 or 3 -> a PIL image (greyscale or RGB)."""
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def image_grid(images: np.ndarray, pad: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 (rows, cols, R, R, C) -> one uint8 picture (H, W, C) with `pad` pixels between cells."""
    if images.ndim != 5:
        raise ValueError(f"images must have shape (rows, cols, height, width, channels), got {images.shape}")
    rows, cols, h, w, c = images.shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for r in range(rows):
        for k in range(cols):
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            out[y:y + h, x:x + w] = images[r, k]
    return out


def refinement_grid(generator: Generator, seeds: Sequence[int], steps: Sequence[int], pad: int = 2) -> np.ndarray:
    """One uint8 picture (H, W, C): a row per seed, a column per entry of `steps` (the image
    after that many refinement steps). Used by training previews, reports and model cards."""
    steps = [check_num_steps(h, "steps") for h in steps]
    images = trajectory(generator, seeds_to_z(list(seeds), generator.z_dim), max(steps)).images  # (S+1, B, C, R, R)
    cells = np.stack([to_uint8(images[h]) for h in steps], axis=1)                              # (B, len, R, R, C)
    return image_grid(cells, pad)


MAPPER_ROWS = 1     # seeds per mapper call; the decoder takes one seed's frames per call (the model's H + 1)


def batch_invariant_trajectory(generator: Generator, z: torch.Tensor, steps: int,
                               intervene: Optional[Intervention] = None) -> Trajectory:
    """trajectory(), computed so that a seed gives the same bits alone or in any batch (what an
    app that batches its visitors' seeds must promise: a seed's image never depends on who else
    asked at the same moment).

    CPU matrix kernels choose their blocking, and with it the order in which the last bits are
    rounded, by the shape of the call *and by the machine* (instruction set, cache sizes): padding
    batches to a multiple of 4 rows kept a seed's bits on one CPU and lost them on another. So
    every kernel call here has one shape whatever the batch: the mapper runs MAPPER_ROWS seeds per
    call and the decoder one seed's frames, H + 1 per call, the last chunk padded with copies whose
    results are dropped, so that a frame sits at the same row of a call of the same shape alone or
    in any batch (its row matters as well as the shape). A lone seed at H computes exactly what it
    shows. tests/test_app/test_app_batching.py checks this under each instruction set the CPU has; the cost
    of a batch is in docs/BENCHMARKS.md (bench_core (e))."""
    decode_rows = generator.num_steps + 1
    with torch.inference_mode():
        parts = [trajectory(generator, seed_z, steps, decode=False, tokens=True, intervene=intervene)
                 for seed_z in z.split(MAPPER_ROWS)]
        ws = torch.cat([p.ws for p in parts], dim=1)                                         # (S+1, B, w_dim)
        tokens = torch.cat([p.tokens for p in parts], dim=1) if parts[0].tokens is not None else None
        # One seed's frames per call, in step order: a frame's row within its call depends on its
        # step alone, never on the batch (with 9 rows, kernels treat the last row apart).
        images = torch.stack([torch.cat([generator.synthesize(_pad_rows(chunk, decode_rows))[:len(chunk)]
                                         for chunk in seed_ws.split(decode_rows)])
                              for seed_ws in ws.unbind(1)], dim=1)                            # (S+1, B, C, R, R)
    return Trajectory(ws=ws, images=images, tokens=tokens)


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x (at most `rows` long) with copies of its last row appended, up to exactly `rows` rows."""
    return x if len(x) == rows else torch.cat([x, x[-1:].expand(rows - len(x), *x.shape[1:])])
