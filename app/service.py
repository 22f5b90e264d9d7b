"""The app's adapter to rtm_core: checkpoint folder -> frames and map coordinates.

No Gradio here: the UI calls `TrajectoryService`, tests call it directly. Models are
loaded once and kept; a seed's whole trajectory (w and image at every step) is computed in
one batched call and the most recent results are cached.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from rtm_core import Generator, load_checkpoint, read_config, seed_to_z, to_pil, to_uint8, trajectory

from .nearest import TrainingImages, load_training_images
from .projection import Projection, fit_pca, load_projection, reference_cloud

MAX_SEED = 2**32 - 1     # what the UI accepts: safe in JavaScript numbers and easy to type
MAX_STEPS = 64           # inference-time refinement steps the UI offers: the shipped eval.json covers h up to 64
PCA_FALLBACK_SEEDS = 256


@dataclass
class LoadedModel:
    name: str
    generator: Generator
    meta: dict
    projection: Projection
    eval: Optional[dict]          # the checkpoint's eval.json, if any
    training_images: Optional[TrainingImages]  # for the nearest-neighbour check, if shipped
    reference: dict               # the map's background points, sent with every trajectory

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

    @property
    def num_steps(self) -> int:
        return len(self.frames) - 1


def _whole_number(value: Any, name: str, low: int, high: int) -> int:
    """Accept ints and integral floats/strings from the UI or API; anything else is a clear error."""
    message = f"{name} must be a whole number between {low} and {high}, got {value!r}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not number.is_integer() or not low <= number <= high:
        raise ValueError(message)
    return int(number)


def parse_seed(seed: Any) -> int:
    return _whole_number(seed, "seed", 0, MAX_SEED)


def parse_steps(steps: Any) -> int:
    return _whole_number(steps, "steps", 1, MAX_STEPS)


class TrajectoryService:
    def __init__(self, root: str | Path = "checkpoints", cache_size: int = 64):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"checkpoint folder {self.root} does not exist")
        self._models: dict[str, LoadedModel] = {}
        self._cache: OrderedDict[tuple, TrajectoryResult] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Checkpoint folders directly under root (those with a config.json)."""
        return sorted(p.name for p in self.root.iterdir() if (p / "config.json").is_file())

    def trained_steps(self, name: str) -> int:
        """The trained H of a checkpoint, read from its config without loading it."""
        return read_config(self.root / name).mapper.trained_steps

    def model(self, name: Any) -> LoadedModel:
        if not isinstance(name, str) or name not in self.names():
            raise ValueError(f"unknown checkpoint {name!r}; choose one of {self.names()}")
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name)
            return self._models[name]

    def _load(self, name: str) -> LoadedModel:
        folder = self.root / name
        generator, meta = load_checkpoint(folder)
        projection = load_projection(folder)
        if projection is None:  # no offline UMAP: PCA of a small cloud, computed now (about a second)
            projection = fit_pca(*reference_cloud(generator, PCA_FALLBACK_SEEDS))
        eval_path = folder / "eval.json"
        evaluation = json.loads(eval_path.read_text()) if eval_path.is_file() else None
        return LoadedModel(name=name, generator=generator, meta=meta, projection=projection, eval=evaluation,
                           training_images=load_training_images(folder), reference=reference_points(projection))

    def trajectory(self, name: Any, seed: Any, steps: Any = None) -> TrajectoryResult:
        model = self.model(name)
        seed = parse_seed(seed)
        steps = model.trained_steps if steps is None else parse_steps(steps)
        key = (model.name, seed, steps)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        z = seed_to_z(seed, model.generator.z_dim)[None]
        with torch.inference_mode():
            tr = trajectory(model.generator, z, steps)
        ws = tr.ws[:, 0].numpy()                                         # (S+1, w_dim)
        result = TrajectoryResult(
            checkpoint=model.name, seed=seed, frames=to_uint8(tr.images[:, 0]), ws=ws,
            xy=model.projection.place(ws), displacement=np.linalg.norm(np.diff(ws, axis=0), axis=1))
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def payload(self, result: TrajectoryResult) -> dict:
        """Everything the browser needs to scrub without asking the server again."""
        model = self.model(result.checkpoint)
        return {
            "checkpoint": result.checkpoint, "seed": result.seed, "num_steps": result.num_steps,
            "trained_steps": model.trained_steps, "mapper": model.generator.config.mapper.kind,
            "frames": [png_data_uri(f) for f in result.frames],
            "xy": result.xy.round(4).tolist(), "displacement": result.displacement.round(5).tolist(),
            "reference": model.reference, "nearest": self.nearest(model, result.frames[-1]),
        }

    @staticmethod
    def nearest(model: LoadedModel, frame: np.ndarray, k: int = 3) -> list[dict]:
        """The k training images nearest to `frame` (empty when the checkpoint ships none)."""
        if model.training_images is None:
            return []
        ti = model.training_images
        return [{"image": png_data_uri(ti.images[i]), "label": str(ti.labels[i]) if i < len(ti.labels) else "",
                 "distance": round(d, 2)} for i, d in ti.nearest(frame, k)]


def reference_points(projection: Projection, limit: int = 3000) -> dict:
    """The map's background: reference points (x, y, step), at most `limit`, evenly thinned."""
    keep = np.linspace(0, len(projection.ref_xy) - 1, min(limit, len(projection.ref_xy))).astype(int)
    return {"x": projection.ref_xy[keep, 0].round(3).tolist(), "y": projection.ref_xy[keep, 1].round(3).tolist(),
            "step": projection.ref_steps[keep].tolist(), "method": projection.method.upper()}


def png_data_uri(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    to_pil(frame).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def gif_bytes(result: TrajectoryResult, size: int = 256, frame_ms: int = 100) -> bytes:
    """The refinement as an animated GIF (each step `frame_ms`, the last held for a second)."""
    frames = [to_pil(f).resize((size, size), Image.Resampling.LANCZOS) for f in result.frames]
    buffer = io.BytesIO()
    durations = [frame_ms] * (len(frames) - 1) + [1000]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return buffer.getvalue()
