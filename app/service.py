"""The app's adapter to rtm_core: checkpoint folder -> frames and map coordinates.

No Gradio here: the UI calls `TrajectoryService`, tests call it directly. Models are
loaded once and kept; a seed's whole trajectory (w, z_H and image at every step) is
computed in one batched call and the most recent results are cached.

Input from a browser or an API client is untrusted: every value is length-capped before it
is validated, and what an error message echoes is cut short (`preview`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from rtm_core import Generator, load_checkpoint, read_config, seeds_to_z, to_pil, to_uint8, trajectory
from rtm_core.interventions import KINDS as INTERVENTION_KINDS
from rtm_core.interventions import Intervention, TokenIntervention
from rtm_core.sampling import Trajectory

from .batching import MicroBatcher
from .captions import VISIBLE_LEVELS, captions, percent, seed_spread, shares_start, step_facts
from .nearest import TrainingImages, load_training_images
from .projection import PROJECTION_FILE, Projection, fit_pca, load_projection, reference_cloud

UI_MAX_SEED = 2**32 - 1  # what the app accepts: a subset of rtm_core's seeds (MAX_SEED = 2**63 - 1), safe in JavaScript
MAX_STEPS = 64           # inference-time refinement steps the UI offers: the shipped eval.json covers h up to 64
MAX_NAME_CHARS = 128     # a checkpoint name longer than this is refused unread
MAX_NUMBER_CHARS = 32    # a seed or step count sent as text
MAX_EVAL_BYTES = 4 << 20           # eval.json is ~15 KB
MAX_SIDE_FILE_BYTES = 256 << 20    # projection.npz, training_images.npz: a few MB
WALK_FRAMES = (2, 16)    # a seed walk shows between 2 and 16 seeds
CHANGED_LEVELS = VISIBLE_LEVELS  # an intervention "changed" a pixel when a channel moved by more than this (of 255)
HEALED = 0.005           # an intervention is healed once under 0.5 % of the pixels differ
TAIL_BEHIND = 0.8        # the map's fisheye starts where 80 % of w's path is walked, or sooner:
MAP_APART = 0.03         # where a step lands within 3 % of the map's width of a later one
GRID_SEEDS = (1, 64)     # the grid view shows between 1 and 64 seeds (16 by default)
GRID_MAX_FRAMES = 16 * 65  # seeds x (steps + 1): 16 seeds up to 64 steps, 64 seeds up to 15
WEBP_MAX_SIDE = 16383   # WebP's limit: a taller strip (the training images of a large set) stays PNG
MAPPER_ROWS = 1     # seeds per mapper call (frames per decoder call: the model's H + 1); see batched_trajectory
PCA_FALLBACK_SEEDS = 256
ASSETS_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-assets"  # served to the page (app/ui.py)
GRID_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-grids"      # the grid view's sprites, served likewise
GRID_KEEP, GRID_MAX_AGE_S = 256, 3600


def preview(value: Any, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: safe to put in an error message or a log line."""
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[:4 * limit]  # never repr a 100 MB string to cut it afterwards
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


@dataclass
class LoadedModel:
    name: str
    generator: Generator
    meta: dict
    projection: Projection
    eval: Optional[dict]          # the checkpoint's eval.json, if any (and readable)
    training_images: Optional[TrainingImages]  # for the nearest-neighbour check, if shipped
    assets_file: Path             # the map's reference cloud and the training images, fetched once per page
    warnings: list[str] = field(default_factory=list)  # side files that could not be read
    spread: np.ndarray = field(default_factory=lambda: np.zeros(1))  # seeds' spread in w per step (app.captions)

    @property
    def trained_steps(self) -> int:
        return self.generator.num_steps


@dataclass(frozen=True)
class TrajectoryResult:
    checkpoint: str
    seed: int
    frames: np.ndarray            # (S+1, R, R, C) uint8: the image after steps 0..S
    ws: np.ndarray                # (S+1, w_dim)
    xy: np.ndarray                # (S+1, 2): the path on the map
    displacement: np.ndarray      # (S,): ||w_h - w_{h-1}|| for h = 1..S
    token_change: Optional[np.ndarray]  # (S, T): ||z_H,t after h - before h|| per token; None for an MLP
    pixel_change: np.ndarray      # (S, R, R): mean |frame_h - frame_{h-1}| over channels, 0..255
    tokens: Optional[np.ndarray] = None  # (S+1, T, d): z_H after every step (a swap's donor); None for an MLP

    @property
    def num_steps(self) -> int:
        return len(self.frames) - 1


def _whole_number(value: Any, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats/strings from the UI or API; anything else is a clear error,
    never a silent rounding (3.5) or clamping (0, 10000)."""
    message = f"{name} must be a whole number between {low} and {high}"
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        raise ValueError(f"{message}; got {len(value):,} characters of text")
    if isinstance(value, bool):
        raise ValueError(f"{message}, got {value!r}")
    if value is None:   # what a number box sends when empty, for text (abc) and for numbers no float holds
        raise ValueError(f"{message}; the box is empty or does not hold a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{message}, got {preview(value)}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"{message}, got {preview(value)} (not a whole number)")
    if not low <= number <= high:
        shown = f"{int(number):,}" if isinstance(value, float) else preview(value)   # 1e+19 as the digits typed
        raise ValueError(f"{message}, got {shown} (out of range)")
    return int(number)


def parse_seed(seed: Any) -> int:
    return _whole_number(seed, "seed", 0, UI_MAX_SEED)


def parse_steps(steps: Any) -> int:
    return _whole_number(steps, "steps", 1, MAX_STEPS)


def parse_seeds(seeds: Any) -> list[int]:
    """A list of seeds (the grid view): 1 to 64 of them, each checked like one seed."""
    if not isinstance(seeds, (list, tuple)):
        raise ValueError(f"seeds must be a list of whole numbers, got {type(seeds).__name__}")
    low, high = GRID_SEEDS
    if not low <= len(seeds) <= high:
        raise ValueError(f"between {low} and {high} seeds at once, got {len(seeds):,}")
    return [parse_seed(s) for s in seeds]


def grid_seeds(first: Any, count: Any) -> list[int]:
    """`count` consecutive seeds from `first` (the grid view)."""
    first, count = parse_seed(first), _whole_number(count, "number of seeds", *GRID_SEEDS)
    if first + count - 1 > UI_MAX_SEED:
        raise ValueError(f"the grid's last seed would be {first + count - 1}, past {UI_MAX_SEED}; start lower")
    return list(range(first, first + count))


@dataclass(frozen=True)
class Applied:
    """An intervention as it was applied (checked values)."""
    kind: str
    token: int
    step: int
    donor_seed: Optional[int] = None

    def __str__(self) -> str:
        if self.kind == "swap":
            return f"token {self.token} swapped with seed {self.donor_seed}'s at step {self.step}"
        return f"token {self.token} {'frozen' if self.kind == 'freeze' else 'knocked out'} from step {self.step}"


def describe_change(fraction: list[float]) -> str:
    """An intervention's effect over the steps in one sentence: its peak, and whether the
    recursion healed it (under 0.5 % of the pixels still differ at the last step)."""
    peak = int(np.argmax(fraction)) if fraction else 0
    if not fraction or fraction[peak] == 0:
        return "No pixel differs visibly from the original's at any step."
    said = f"At most {percent(fraction[peak])} of the pixels differ visibly, at step {peak}"
    if fraction[-1] < HEALED:
        healed = next(h for h in range(peak, len(fraction)) if all(f < HEALED for f in fraction[h:]))
        return f"{said}; the recursion healed it by step {healed} (under {percent(HEALED)} differ from there on)."
    return f"{said}; {percent(fraction[-1])} still differ at the last step."


def batched_trajectory(generator: Generator, z: torch.Tensor, steps: int,
                       intervene: Optional[Intervention] = None) -> Trajectory:
    """trajectory(), computed so that a seed gives the same bits alone or in any batch.

    CPU matrix kernels choose their blocking, and with it the order in which the last bits are
    rounded, by the shape of the call *and by the machine* (instruction set, cache sizes):
    padding batches to a multiple of 4 rows kept a seed's bits on this project's AMD CPU and
    lost them on a Sapphire Rapids Xeon. So every kernel call here has one shape whatever
    the batch: the mapper runs one seed per call (MAPPER_ROWS) and the decoder one seed's frames,
    H + 1 per call (a whole trajectory at the model's trained H), the last chunk padded with copies
    whose results are dropped, so a frame sits at the same row of a call of the same shape alone or
    in any batch (its place matters too: with 9 rows under AVX2 at 2 threads, frames moved between
    rows changed their bits). tests/test_app_batching.py checks this under the AVX2, AVX-512 and
    native instruction sets. A lone seed at H computes exactly what it shows, with no padding
    (it used to run 8 mapper rows and decode 16 frames for its 9: 64 -> 38 ms at 64x64, 39 -> 19
    ms at 32x32); twenty seeds together cost 13 % more at 64x64 and 54 % more at 32x32
    (docs/BENCHMARKS.md)."""
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


def _read_eval(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_EVAL_BYTES:
        raise ValueError(f"{path.stat().st_size:,} bytes, more than {MAX_EVAL_BYTES:,}")
    data = json.loads(path.read_text())
    rows = data.get("per_step") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("steps"), int) for r in rows):
        raise ValueError("no 'per_step' list of rows with integer 'steps'")
    return data


def _side_file(folder: Path, name: str, load, warnings: list[str], what: str):
    """Load an optional file next to the checkpoint; if it is broken, say so and go on without it."""
    path = folder / name
    try:
        if path.is_file() and path.stat().st_size > MAX_SIDE_FILE_BYTES:
            raise ValueError(f"{path.stat().st_size:,} bytes, more than {MAX_SIDE_FILE_BYTES:,}")
        return load(path)
    except Exception as e:  # any damage to an optional file: the model itself still loads
        warnings.append(f"{name} could not be read ({type(e).__name__}: {preview(str(e), 120)}); {what}")
        return None


class TrajectoryService:
    def __init__(self, root: str | Path | list = "checkpoints", cache_size: int = 128, max_batch: int = 32):
        """root: a folder of checkpoint folders, or several (the shipped ones and the user's own
        runs); a name found in two belongs to the first."""
        self.roots = [Path(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
        for folder in self.roots:
            if not folder.is_dir():
                raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
        self._models: dict[str, LoadedModel] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[tuple, TrajectoryResult] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()   # guards the dicts above; never held while reading a file
        # New seeds asked for at the same time (checkpoint, steps) share one forward pass.
        self.batcher = MicroBatcher(lambda key, seeds: self._compute(self._models[key[0]], seeds, key[1]), max_batch)

    def names(self) -> list[str]:
        """Checkpoint folders directly under the roots (those with a config.json)."""
        return sorted(self._folders())

    def _folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in reversed(self.roots):   # the first root's folder wins a shared name
            found.update({p.name: p for p in root.iterdir() if (p / "config.json").is_file()})
        return found

    def folder(self, name: Any) -> Path:
        """The folder of a checked checkpoint name."""
        return self._folders()[self.check_name(name)]

    def check_name(self, name: Any) -> str:
        if not isinstance(name, str):
            raise ValueError(f"checkpoint must be a name (text), got {type(name).__name__}")
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"checkpoint name is {len(name):,} characters long; names are at most "
                             f"{MAX_NAME_CHARS}. Choose one of {self.names()}")
        if name in self._models:   # loaded: no need to list the folder (3 times per request otherwise)
            return name
        if name not in self.names():
            raise ValueError(f"unknown checkpoint {preview(name)}; choose one of {self.names()}")
        return name

    def trained_steps(self, name: str) -> int:
        """The trained H of a checkpoint, read from its config without loading it."""
        return read_config(self.folder(name)).mapper.trained_steps

    def model(self, name: Any) -> LoadedModel:
        name = self.check_name(name)
        with self._lock:
            if name in self._models:
                return self._models[name]
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:  # one loader per checkpoint; requests for other (loaded) models go on meanwhile
            with self._lock:
                if name in self._models:
                    return self._models[name]
            loaded = self._load(name)
            with self._lock:
                self._models[name] = loaded
            return loaded

    def _load(self, name: str) -> LoadedModel:
        folder = self.folder(name)
        generator, meta = load_checkpoint(folder)
        # The decoder's convolutions in channels-last layout: oneDNN's faster path on a CPU
        # (0.77-0.81x the decode time on two cores, bench_core (d)), and still the same bits for
        # a seed alone or in any batch (batched_trajectory).
        generator.to(memory_format=torch.channels_last)
        warnings: list[str] = []
        projection = _side_file(folder, PROJECTION_FILE, lambda p: load_projection(p.parent), warnings,
                                "the map falls back to PCA")
        if projection is None:  # no offline UMAP: PCA of a small cloud, computed now (about a second)
            projection = fit_pca(*reference_cloud(generator, PCA_FALLBACK_SEEDS))
        evaluation = _side_file(folder, "eval.json", _read_eval, warnings, "the metric curves are hidden")
        training_images = _side_file(folder, "training_images.npz", lambda p: load_training_images(p.parent),
                                     warnings, "the nearest-image check is off")
        return LoadedModel(name=name, generator=generator, meta=meta, projection=projection, eval=evaluation,
                           training_images=training_images, assets_file=write_assets(projection, training_images),
                           warnings=warnings, spread=seed_spread(generator, generator.num_steps))

    def _steps(self, model: LoadedModel, steps: Any) -> int:
        return model.trained_steps if steps is None else parse_steps(steps)

    def trajectory(self, name: Any, seed: Any, steps: Any = None) -> TrajectoryResult:
        """One seed's trajectory: from the cache, or computed together with whatever other new
        seeds are being asked for at the same moment (the micro-batcher)."""
        model = self.model(name)
        seed, steps = parse_seed(seed), self._steps(model, steps)
        return self._cached((model.name, seed, steps)) or self._remember(self.batcher((model.name, steps), seed))

    def trajectories(self, name: Any, seeds: Any, steps: Any = None) -> list[TrajectoryResult]:
        """Many seeds' trajectories (the grid view), the new ones in one batched call."""
        model = self.model(name)
        seeds, steps = parse_seeds(seeds), self._steps(model, steps)
        if len(seeds) * (steps + 1) > GRID_MAX_FRAMES:
            raise ValueError(f"{len(seeds)} seeds x {steps + 1} frames is more than {GRID_MAX_FRAMES:,} frames at once; "
                             f"show fewer seeds or fewer steps (at {steps} steps: at most "
                             f"{GRID_MAX_FRAMES // (steps + 1)} seeds)")
        found = {s: self._cached((model.name, s, steps)) for s in seeds}
        new = [s for s in seeds if found[s] is None]
        if new:
            found.update({r.seed: self._remember(r) for r in self._compute(model, new, steps)})
        return [found[s] for s in seeds]

    def intervene(self, name: Any, seed: Any, steps: Any, kind: Any, token: Any, step: Any,
                  donor_seed: Any = None) -> tuple[TrajectoryResult, TrajectoryResult, Applied]:
        """The seed's trajectory, the same refinement with one token of z_H frozen, knocked out
        or swapped with another seed's (rtm_core.interventions) from `step` on, and what was done
        in words."""
        model = self.model(name)
        if model.generator.config.mapper.kind != "rtm":
            raise ValueError("interventions need RTM's latent tokens; this checkpoint's mapper is a one-pass MLP. "
                             "Choose an RTM checkpoint")
        original = self.trajectory(model.name, seed, steps)
        kind = kind[:MAX_NAME_CHARS] if isinstance(kind, str) else kind
        if kind not in INTERVENTION_KINDS:
            raise ValueError(f"intervention must be one of {list(INTERVENTION_KINDS)}, got {preview(kind)}")
        token = _whole_number(token, "token", 0, model.generator.config.mapper.num_tokens - 1)
        step = _whole_number(step, "intervention step", 0, original.num_steps)
        donor, donor_seed = None, (parse_seed(donor_seed) if kind == "swap" else None)
        if kind == "swap":
            donor = torch.from_numpy(self.trajectory(model.name, donor_seed, original.num_steps).tokens[step])
        [changed] = self._compute(model, [original.seed], original.num_steps, TokenIntervention(kind, token, step, donor))
        return original, changed, Applied(kind, token, step, donor_seed)

    def _cached(self, key: tuple) -> Optional[TrajectoryResult]:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _remember(self, result: TrajectoryResult) -> TrajectoryResult:
        with self._lock:
            self._cache[(result.checkpoint, result.seed, result.num_steps)] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _compute(self, model: LoadedModel, seeds: list[int], steps: int,
                 intervene: Optional[Intervention] = None) -> list[TrajectoryResult]:
        """Trajectories of `seeds` (already checked) in one forward pass, in their order."""
        unique = list(dict.fromkeys(seeds))
        tr = batched_trajectory(model.generator, seeds_to_z(unique, model.generator.z_dim), steps, intervene)
        xy = model.projection.place(tr.ws.transpose(0, 1).flatten(0, 1).numpy())  # every path in one call
        xy = xy.reshape(len(unique), steps + 1, 2)
        results = {seed: self._result(model, seed, tr, i, xy[i]) for i, seed in enumerate(unique)}
        return [results[s] for s in seeds]

    @staticmethod
    def _result(model: LoadedModel, seed: int, tr: Trajectory, i: int, xy: np.ndarray) -> TrajectoryResult:
        # Frames contiguous once here: PIL copied each strided frame again for its PNG (py-spy, 20 visitors).
        ws, frames = tr.ws[:, i].numpy(), np.ascontiguousarray(to_uint8(tr.images[:, i]))  # (S+1, w_dim), (S+1, R, R, C)
        tokens = tr.tokens[:, i] if tr.tokens is not None else None      # (S+1, T, d)
        return TrajectoryResult(
            checkpoint=model.name, seed=seed, frames=frames, ws=ws, xy=xy,
            displacement=np.linalg.norm(np.diff(ws, axis=0), axis=1),
            token_change=(tokens[1:] - tokens[:-1]).norm(dim=-1).numpy() if tokens is not None else None,
            pixel_change=np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=-1).astype(np.float32),
            tokens=tokens.numpy() if tokens is not None else None)

    def payload(self, result: TrajectoryResult) -> dict:
        """Everything the browser needs to scrub without asking the server again. What is the
        same for every seed (the map's reference cloud, the training images) is not in it: the
        page fetches the checkpoint's `assets_file` once and keeps it."""
        model = self.model(result.checkpoint)
        peak = float(result.pixel_change.max()) if result.num_steps else 0.0
        return {
            "title": f"{result.checkpoint} · seed {result.seed} · {plural(result.num_steps, 'step')}",
            "checkpoint": result.checkpoint, "seed": result.seed, "num_steps": result.num_steps,
            "trained_steps": model.trained_steps, "mapper": model.generator.config.mapper.kind,
            "frames": [image_data_uri(f) for f in result.frames],
            "xy": result.xy.round(3).tolist(), "displacement": result.displacement.round(4).tolist(),
            "tail": path_end(result.ws, result.displacement, result.xy, model.projection.span),
            "token_change": result.token_change.round(2).tolist() if result.token_change is not None else None,
            "pixel_change": change_strip(result.pixel_change, peak),
            "pixel_change_peak": round(peak / 255, 4),       # the strip's white, as a fraction of full range
            "reference_method": model.projection.method.upper(),
            "nearest": self.nearest(model, result.frames[-1]),
            "captions": self.captions(model, result), "shared_start": shares_start(model.spread),
            "resolution": model.generator.img_resolution,
            "num_tokens": model.generator.config.mapper.num_tokens if model.generator.config.mapper.kind == "rtm" else 0,
            "num_cycles": model.generator.config.mapper.num_cycles if model.generator.config.mapper.kind == "rtm" else 0,
        }

    @staticmethod
    def captions(model: LoadedModel, result: TrajectoryResult) -> list[str]:
        """What each step did, in words computed from this trajectory (app/captions.py)."""
        ti = model.training_images
        nearest = ti.nearest_indices(result.frames) if ti is not None else None
        facts = step_facts(result.frames, result.displacement, model.spread, model.trained_steps, nearest)
        label = describe_label(ti.labels[nearest[-1]]) if nearest is not None and nearest[-1] < len(ti.labels) else None
        return captions(facts, model.trained_steps, shares_start(model.spread), label)

    def intervention_payload(self, original: TrajectoryResult, changed: TrajectoryResult, what: Applied) -> dict:
        """The intervened trajectory's payload, with where its frames differ from the original's
        at the same step (any channel by more than CHANGED_LEVELS of 255) as a mask strip, the
        original's frames (the before/after wipe) and the effect per step in one sentence."""
        differs = np.abs(changed.frames.astype(np.int16) - original.frames.astype(np.int16)).max(axis=-1) > CHANGED_LEVELS
        fraction = [round(float(d.mean()), 4) for d in differs]
        return {**self.payload(changed), "title": f"{changed.checkpoint} · seed {changed.seed} · {what}",
                "intervention": str(what), "intervened": {"kind": what.kind, "token": what.token, "step": what.step},
                "changed_mask": mask_strip(differs), "changed_fraction": fraction,
                "change_summary": describe_change(fraction),
                "original_frames": [image_data_uri(f) for f in original.frames]}

    def beyond_payload(self, name: Any, seed: Any, steps: Any) -> dict:
        """The same seed run on to MAX_STEPS, for the map's overlay: the path after `steps`, the
        last image, and what changed after `steps` in one sentence."""
        model = self.model(name)
        seed, steps = parse_seed(seed), self._steps(model, steps)
        if steps >= MAX_STEPS:
            raise ValueError(f"the trajectory already runs {MAX_STEPS} steps, the most the app offers")
        long = self.trajectory(model.name, seed, MAX_STEPS)
        walked = float(long.displacement[:steps].sum()) or 1.0
        further = float(long.displacement[steps:].sum())
        differs = np.abs(long.frames[-1].astype(np.int16) - long.frames[steps].astype(np.int16)).max(axis=-1)
        visible = float((differs > CHANGED_LEVELS).mean())
        return {"checkpoint": model.name, "seed": seed, "from_step": steps, "to_step": MAX_STEPS,
                "xy": long.xy[steps:].round(3).tolist(), "frame": image_data_uri(long.frames[-1]),
                "summary": f"Run on from step {steps} to {MAX_STEPS}: w moved a further {further:.3g} "
                           f"({percent(further / walked)} of its path up to step {steps}), and "
                           f"{percent(visible)} of the pixels of the last image differ visibly from step {steps}'s."}

    def grid_payload(self, results: list[TrajectoryResult]) -> tuple[dict, Path]:
        """Many seeds under one slider: every frame in one lossless WebP sprite (a row per step,
        a column per seed; a file the page fetches, ~215 KB for 16 seeds at H = 8, a third more
        as base64 in the JSON), each seed's path on the map, and each final frame's nearest
        training image (how many distinct ones: how diverse the grid's final frames are)."""
        model = self.model(results[0].checkpoint)
        frames = np.stack([r.frames for r in results], axis=1)                # (S+1, N, R, R, C)
        sprite = frames.transpose(0, 2, 1, 3, 4).reshape(frames.shape[0] * frames.shape[2], -1, frames.shape[-1])
        buffer = io.BytesIO()
        to_pil(sprite).save(buffer, format="WEBP", lossless=True, quality=50, method=3)  # 0.3 s; method 6: 30 s
        prune(GRID_DIR, "*.webp", GRID_KEEP, GRID_MAX_AGE_S)
        sprite_file = write_by_hash(GRID_DIR, buffer.getvalue(), ".webp")
        nearest = [self.nearest(model, r.frames[-1], k=1) for r in results]
        return {
            "checkpoint": model.name, "seeds": [r.seed for r in results], "num_steps": results[0].num_steps,
            "trained_steps": model.trained_steps, "resolution": int(frames.shape[2]),
            "xy": [r.xy.round(3).tolist() for r in results],
            "nearest": [n[0] if n else None for n in nearest],
            "distinct_nearest": len({n[0]["index"] for n in nearest if n}) if all(nearest) else None,
            "reference_method": model.projection.method.upper(),
        }, sprite_file

    @staticmethod
    def nearest(model: LoadedModel, frame: np.ndarray, k: int = 3) -> list[dict]:
        """The k training images nearest to `frame`, as indices into the assets' image strip
        (empty when the checkpoint ships none)."""
        if model.training_images is None:
            return []
        ti = model.training_images
        return [{"index": i, "label": describe_label(ti.labels[i] if i < len(ti.labels) else ""),
                 "distance": round(d, 2)} for i, d in ti.nearest(frame, k)]

    def seed_walk(self, name: Any, seed_a: Any, seed_b: Any, count: Any = 8) -> np.ndarray:
        """Final frames (count, R, R, C) of `count` latents spaced along the great circle from
        seed_a's z to seed_b's z, all refined for the trained H in one batched call."""
        model = self.model(name)
        seeds = [parse_seed(seed_a), parse_seed(seed_b)]
        count = _whole_number(count, "frames", *WALK_FRAMES)
        a, b = seeds_to_z(seeds, model.generator.z_dim)
        z = torch.stack([slerp(a, b, t) for t in np.linspace(0.0, 1.0, count)])
        with torch.inference_mode():
            return to_uint8(trajectory(model.generator, z, model.trained_steps).images[-1])


def path_end(ws: np.ndarray, displacement: np.ndarray, xy: np.ndarray, span: float) -> Optional[dict]:
    """The end of a path through a fisheye: w at the late steps, around the last one, in the plane
    of their own two principal directions, each at its true direction and at its distance from the
    last step on a log scale. The map's projection puts late steps that differ by less than its
    resolution on one point; their distances shrink about geometrically, so on a log scale each
    step stands apart. The late steps: from the first that lands within MAP_APART of the map's
    `span` from a later one (so every step before it has a point of its own on the map), or from
    where TAIL_BEHIND of the path is walked if that comes sooner; at least the last three."""
    steps = len(ws) - 1
    if steps < 3:
        return None
    behind = np.cumsum(displacement) / max(float(displacement.sum()), 1e-12)
    first = min(int(np.searchsorted(behind, TAIL_BEHIND)) + 1, steps - 2)
    near = np.linalg.norm(xy[:, None] - xy[None, :], axis=-1) < MAP_APART * span     # (S+1, S+1)
    shared = [h for h in range(1, steps) if near[h, h + 1:].any()]
    first = max(1, min([first] + shared))
    end = ws[first:].astype(np.float64) - ws[-1].astype(np.float64)
    _, _, vt = np.linalg.svd(end, full_matrices=False)
    plane = end @ vt[:2].T                                   # (k, 2), the last step at the origin
    distance = np.linalg.norm(end, axis=1)
    moved = distance > 0
    if not moved.any():
        return {"from_step": first, "xy": np.zeros((len(end), 2)).tolist(), "distance": distance.tolist()}
    r = np.linalg.norm(plane, axis=1, keepdims=True)
    radius = np.where(moved, np.log10(np.maximum(distance, 1e-300) / distance[moved].min()) + 1, 0)[:, None]
    xy = np.where(r > 0, plane / np.maximum(r, 1e-300) * radius, 0)
    return {"from_step": first, "xy": xy.round(4).tolist(), "distance": [float(f"{d:.3g}") for d in distance]}


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian z lie near a sphere, and a straight line between two
    of them passes through its inside, where no training latent ever was."""
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def describe_label(label: Any) -> str:
    """A training image's label as plain text: an emoji gets its Unicode name ('😀 grinning face')."""
    text = str(label)[:64]
    names = [unicodedata.name(c, "").lower() for c in text if unicodedata.category(c) == "So"]
    names = [n for n in names if n]
    return f"{text} {' + '.join(names)}" if names and len(text) <= 8 else text


def write_assets(projection: Projection, training_images: Optional[TrainingImages], limit: int = 3000) -> Path:
    """What every seed of a checkpoint shares, as one JSON file named by its content: the map's
    reference points (x, y, step; at most `limit`, evenly thinned) and the training images as
    one PNG strip (N*R x R). The page fetches it once per checkpoint and keeps it."""
    keep = np.linspace(0, len(projection.ref_xy) - 1, min(limit, len(projection.ref_xy))).astype(int)
    assets: dict[str, Any] = {"reference": {"x": projection.ref_xy[keep, 0].round(3).tolist(),
                                            "y": projection.ref_xy[keep, 1].round(3).tolist(),
                                            "step": projection.ref_steps[keep].tolist()},
                              "training_images": None, "training_count": 0}
    if training_images is not None and len(training_images.images):
        images = training_images.images
        assets["training_images"] = image_data_uri(images.reshape(-1, *images.shape[2:]))
        assets["training_count"] = len(images)
    return write_by_hash(ASSETS_DIR, json.dumps(assets).encode(), ".json")


def write_by_hash(folder: Path, body: bytes, suffix: str) -> Path:
    """folder/HASH.suffix holding `body`, named by its content (24 hex digits of its SHA-256):
    written once, atomically, so a page never fetches half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(body).hexdigest()[:24]}{suffix}"
    if not path.is_file():
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
    return path


def prune(folder: Path, pattern: str, keep: int, max_age_s: float) -> None:
    """Delete all but the newest `keep` files matching `pattern`, and any older than max_age_s:
    downloads and grid sprites are fetched soon after they are made, never kept."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for k, path in enumerate(files):
        if k >= keep or now - path.stat().st_mtime > max_age_s:
            path.unlink(missing_ok=True)


# A dark-to-bright colour map (black, purple, orange, yellow) for change maps, as a PNG palette.
_STOPS = np.array([[0, 0, 0], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
CHANGE_PALETTE = np.stack([np.interp(np.linspace(0, len(_STOPS) - 1, 256), np.arange(len(_STOPS)), _STOPS[:, c])
                           for c in range(3)], axis=1).round().astype(np.uint8)


def change_strip(change: np.ndarray, peak: float) -> Optional[str]:
    """(S, R, R) change maps -> one PNG data URI, the maps stacked top to bottom (S*R x R) and
    scaled so that `peak` is the brightest colour (square-root scale): one small palette image
    for all steps."""
    if len(change) == 0:
        return None
    # 16 levels: enough to see where the image changes, and the PNG stays small (payload <= 40 KB).
    # On a square-root scale: most steps change a few levels where the first changes 100, and a
    # linear scale showed them black; here a quarter of the peak is half as bright.
    # A 16-entry palette (the colour map's every 17th colour) stored at 4 bits per pixel: 15 %
    # fewer bytes than 8-bit indices into all 256 colours, for the same pixels.
    levels = np.clip(np.round(np.sqrt(np.clip(change, 0, None) / max(peak, 1e-6)) * 15), 0, 15).astype(np.uint8)
    rows = levels.reshape(-1, levels.shape[-1])
    image = Image.frombytes("P", (rows.shape[1], rows.shape[0]), rows.tobytes())
    image.putpalette(CHANGE_PALETTE[::17].tobytes())
    return _data_uri(image, bits=4)


# Cyan: the one hue the face emoji do not use (red hid red and orange faces under the mask).
MASK_RGB = (0, 229, 255)


def mask_strip(differs: np.ndarray) -> str:
    """(S+1, R, R) bool -> one PNG data URI, the masks stacked top to bottom: cyan where True,
    transparent elsewhere, to lay over the frame."""
    rows = differs.reshape(-1, differs.shape[-1]).astype(np.uint8)
    image = Image.frombytes("P", (rows.shape[1], rows.shape[0]), rows.tobytes())
    image.putpalette([0, 0, 0, *MASK_RGB])
    image.info["transparency"] = 0
    return _data_uri(image)


def _data_uri(image: Image.Image, bits: int = 8) -> str:
    # zlib's fastest level for small images: at 32x32, level 9 (or optimize=True) made encoding a
    # third of a new seed's payload time (0.52 vs 0.33 ms per frame, 2.0 vs 0.54 ms per change
    # strip) for 6-10 % fewer bytes. From 64x64 on, a colour image is lossless WebP (method 1):
    # a 64x64 trajectory's 9 frames 41.6 KB in 5.9 ms, where PNG took 48.1 KB in 8.3 ms at level 6
    # and 47.8 KB in 15 ms at level 9, what keeps its payload under 80 KB. Quality 25 (the encoder's
    # effort; still lossless): the sharper faces of stage 11 took up to 68 KB per 9 frames at
    # quality 0, 66.5 KB at 25 for +0.15 ms a frame. Palette strips stay PNG.
    buffer = io.BytesIO()
    if image.mode == "RGB" and min(image.size) >= 64 and max(image.size) <= WEBP_MAX_SIDE:
        image.save(buffer, format="WEBP", lossless=True, quality=25, method=1)
        return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode()
    image.save(buffer, format="PNG", compress_level=6 if min(image.size) >= 64 else 1, bits=bits)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_data_uri(frame: np.ndarray) -> str:
    return _data_uri(to_pil(frame))


def label_step(image: Image.Image, step: int, steps: int) -> Image.Image:
    """'step k/n' in the bottom-left corner, dark on a white box: readable on any emoji. The
    bundled scalable font at 1/14 of the frame (18 px in a 256 px GIF; PIL's bitmap default is
    ~8 px), and the box from the font's full height, so every frame's box is the same size."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(12, image.height // 14))
    draw, text, pad = ImageDraw.Draw(image), f"step {step}/{steps}", max(3, image.height // 64)
    ascent, descent = font.getmetrics()
    width = draw.textlength(f"step {steps}/{steps}", font=font)     # the widest label: one box size throughout
    top = image.height - pad - (ascent + descent) - 2 * pad
    draw.rectangle((pad, top, pad + width + 2 * pad, image.height - pad), fill="white")
    draw.text((2 * pad, top + pad), text, font=font, fill=(40, 40, 40))
    return image


def plural(count: int, word: str) -> str:
    """'1 step', '8 steps'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def gif_bytes(result: TrajectoryResult, size: int = 256, frame_ms: int = 100) -> bytes:
    """The refinement as an animated GIF (each step `frame_ms`, the last held for a second),
    every frame labelled with its step."""
    frames = [label_step(to_pil(f).resize((size, size), Image.Resampling.NEAREST).convert("RGB"), k, result.num_steps)
              for k, f in enumerate(result.frames)]
    buffer = io.BytesIO()
    durations = [frame_ms] * (len(frames) - 1) + [1000]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return buffer.getvalue()
