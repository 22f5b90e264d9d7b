"""The app's adapter to rtm_core: checkpoint folder -> frames and map coordinates.

No Gradio here: the UI calls `TrajectoryService`, tests call it directly. Models are loaded
once and kept, with their side files (eval.json, the map's projection, the training images);
a seed's whole trajectory (w, z_H and image at every step) is computed in one batched call,
new seeds asked for together share it (app/batching.py), and the most recent results are
cached. What comes in is checked by app/inputs.py; what goes out is encoded by app/encode.py.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from rtm_core import Generator, batch_invariant_trajectory, load_checkpoint, read_config, seeds_to_z, to_uint8, trajectory
from rtm_core.interventions import KINDS as INTERVENTION_KINDS
from rtm_core.interventions import Intervention, TokenIntervention
from rtm_core.projection import PROJECTION_FILE, Projection, fit_pca, load_projection, reference_cloud
from rtm_core.sampling import Trajectory

from .batching import MicroBatcher
from .captions import captions, changed, describe_change, percent, seed_spread, shares_start, step_facts
from .encode import change_strip, grid_sprite, image_data_uri, mask_strip, plural, write_assets
from .inputs import MAX_NAME_CHARS, MAX_STEPS, WALK_FRAMES, parse_seed, parse_seeds, parse_steps, preview, \
    whole_number
from .nearest import TrainingImages, describe_label, load_training_images
from .projection import path_end

MAX_EVAL_BYTES = 4 << 20           # eval.json is ~15 KB
MAX_SIDE_FILE_BYTES = 256 << 20    # projection.npz, training_images.npz: a few MB
GRID_MAX_FRAMES = 16 * 65  # seeds x (steps + 1): 16 seeds up to 64 steps, 64 seeds up to 15
PCA_FALLBACK_SEEDS = 256


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
    start_frame: Optional[np.ndarray] = None   # (R, R, C): the picture every seed starts from, if they share one

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


def frame_uris(model: LoadedModel, frames: np.ndarray) -> list[Optional[str]]:
    """Frames as data URIs; step 0's is null where it is the picture every seed of this model
    starts from, which the page has from the assets (an intervention at step 0 changes it: then
    it is sent)."""
    shared = model.start_frame is not None and np.array_equal(frames[0], model.start_frame)
    return [None if k == 0 and shared else image_data_uri(f) for k, f in enumerate(frames)]


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
            found.update({p.name: p for p in root.iterdir()   # a dot-folder is work in progress (train.ship)
                          if not p.name.startswith(".") and (p / "config.json").is_file()})
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
            raise ValueError(f"unknown checkpoint {preview(name)}; choose one of {', '.join(self.names())}")
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
        # a seed alone or in any batch (rtm_core.batch_invariant_trajectory).
        generator.to(memory_format=torch.channels_last)
        warnings: list[str] = []
        projection = _side_file(folder, PROJECTION_FILE, lambda p: load_projection(p.parent), warnings,
                                "the map falls back to PCA")
        if projection is None:  # no offline UMAP: PCA of a small cloud, computed now (about a second)
            projection = fit_pca(*reference_cloud(generator, PCA_FALLBACK_SEEDS))
        evaluation = _side_file(folder, "eval.json", _read_eval, warnings, "the metric curves are hidden")
        training_images = _side_file(folder, "training_images.npz", lambda p: load_training_images(p.parent),
                                     warnings, "the nearest-image check is off")
        spread = seed_spread(generator, generator.num_steps)
        # Where every seed starts from the same w (a learned start state), its picture is the same
        # for every seed: it goes to the page once, with the assets, not in every payload.
        start = to_uint8(batch_invariant_trajectory(generator, seeds_to_z([0], generator.z_dim), 1).images[0]) \
            if shares_start(spread) else None
        return LoadedModel(name=name, generator=generator, meta=meta, projection=projection, eval=evaluation,
                           training_images=training_images, warnings=warnings, spread=spread,
                           start_frame=start[0] if start is not None else None,
                           assets_file=write_assets(projection, training_images,
                                                    image_data_uri(start[0]) if start is not None else None))

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
        token = whole_number(token, "token", 0, model.generator.config.mapper.num_tokens - 1)
        step = whole_number(step, "intervention step", 0, original.num_steps)
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
        tr = batch_invariant_trajectory(model.generator, seeds_to_z(unique, model.generator.z_dim), steps, intervene)
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
            "frames": frame_uris(model, result.frames),
            "xy": result.xy.round(3).tolist(), "displacement": result.displacement.round(4).tolist(),
            "tail": path_end(result.ws, result.displacement, result.xy, model.projection.span),
            "token_change": result.token_change.round(2).tolist() if result.token_change is not None else None,
            "pixel_change": change_strip(result.pixel_change, peak),
            "pixel_change_peak": round(peak / 255, 4),       # the strip's white, as a fraction of full range
            "reference_method": model.projection.method.upper(),
            "nearest": self.nearest(model, result.frames[-1]),
            "captions": self.captions(model, result), "shared_start": model.start_frame is not None,
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
        return captions(facts, model.trained_steps, model.start_frame is not None, label)

    def intervention_payload(self, original: TrajectoryResult, result: TrajectoryResult, what: Applied) -> dict:
        """The intervened trajectory's payload, with where its frames differ from the original's
        at the same step (captions.changed: a channel by more than 8 of 255) as a mask strip, the
        original's frames (the before/after wipe) and the effect per step in one sentence."""
        differs = changed(result.frames, original.frames)
        fraction = [round(float(d.mean()), 4) for d in differs]
        return {**self.payload(result), "title": f"{result.checkpoint} · seed {result.seed} · {what}",
                "intervention": str(what), "intervened": {"kind": what.kind, "token": what.token, "step": what.step},
                "changed_mask": mask_strip(differs), "changed_fraction": fraction,
                "change_summary": describe_change(fraction),
                "original_frames": frame_uris(self.model(original.checkpoint), original.frames)}

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
        visible = float(changed(long.frames[-1], long.frames[steps]).mean())
        return {"checkpoint": model.name, "seed": seed, "from_step": steps, "to_step": MAX_STEPS,
                "xy": long.xy[steps:].round(3).tolist(), "frame": image_data_uri(long.frames[-1]),
                "summary": f"Run on from step {steps} to {MAX_STEPS}: w moved a further {further:.3g} "
                           f"({percent(further / walked)} of its path up to step {steps}), and "
                           f"{percent(visible)} of the pixels of the last image differ from step {steps}'s by more than 3%."}

    def grid_payload(self, results: list[TrajectoryResult]) -> tuple[dict, Path]:
        """Many seeds under one slider: every frame in one sprite the page fetches (encode.grid_sprite),
        each seed's path on the map, and each final frame's nearest training image (how many
        distinct ones: how diverse the grid's final frames are)."""
        model = self.model(results[0].checkpoint)
        frames = np.stack([r.frames for r in results], axis=1)                # (S+1, N, R, R, C)
        sprite_file = grid_sprite(frames)
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
        count = whole_number(count, "frames", *WALK_FRAMES)
        a, b = seeds_to_z(seeds, model.generator.z_dim)
        z = torch.stack([slerp(a, b, t) for t in np.linspace(0.0, 1.0, count)])
        with torch.inference_mode():
            return to_uint8(trajectory(model.generator, z, model.trained_steps).images[-1])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian z lie near a sphere, and a straight line between two
    of them passes through its inside, where no training latent ever was."""
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


