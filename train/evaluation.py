"""Evaluation of checkpoints per number of refinement steps (the work behind `python -m
train.evaluate`, whose --help answers without importing any of this): samples, features,
FD/KID, precision/recall/density/coverage over draws, memorisation, seed diversity,
trajectory statistics, the HTML report; and TrainingEvaluation, what --eval-every runs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

from rtm_core import Generator, load_checkpoint, refinement_grid, seeds_to_z, to_pil, trajectory
from rtm_core.metrics import (EfficientNetLite0Features, expected_coverage, frechet_distance_between,
                              kernel_inception_distance, precision_recall_density_coverage, seed_diversity)
from rtm_core.metrics.inception import load_fid_inception

from .data import load_prepared
from .protocol import DRAWS

SCHEMA_VERSION = 2  # 2: metrics are means over draws with *_sd, kid_effnet, memorisation, moving_share
FEATURE_NAME = "EfficientNet-Lite0 pooled 1280-d, ImageNet weights (FD-EffNet: not comparable with FID)"
INCEPTION_NAME = "Inception-v3 (pt_inception-2015-12-05) pool 2048-d: standard FID"
Extractor = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def extract(extractor: Extractor, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """Features (N, D) on the host; each batch goes to the extractor's device (a network's
    parameters' device; a plain function takes the images where they are)."""
    device = _device_of(extractor)
    return torch.cat([extractor(chunk if device is None else chunk.to(device)).cpu() for chunk in images.split(batch)]).numpy()


def _device_of(extractor: Extractor) -> Optional[torch.device]:
    parameter = next(extractor.parameters(), None) if isinstance(extractor, torch.nn.Module) else None
    return parameter.device if parameter is not None else None


def real_features(data_dir: str, extractor: Extractor, limit: int, name: str = "effnet-lite0") -> np.ndarray:
    """Features of (up to `limit`) real images, cached in the dataset folder."""
    dataset = load_prepared(data_dir)
    images = dataset.images[:limit]
    # The cache is keyed by the images and by the extractor's class too: another feature network
    # (a test's, or a user's) under the same name must not read these.
    digest = hashlib.sha256(images.tobytes() + type(extractor).__qualname__.encode()).hexdigest()[:16]
    cache = Path(data_dir) / f"features-{name}-{len(images)}-{digest}.npy"
    if cache.is_file():
        return np.load(cache, allow_pickle=False)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    features = extract(extractor, tensor)
    np.save(cache, features, allow_pickle=False)
    return features


def metrics(real: np.ndarray, fake: np.ndarray, fd_name: str = "fd_effnet",
            kid_name: str = "kid_effnet") -> dict[str, float]:
    kid, kid_std = kernel_inception_distance(real, fake, num_subsets=50, subset_size=min(1000, len(real), len(fake)))
    return {fd_name: frechet_distance_between(real, fake), kid_name: kid, f"{kid_name}_std": kid_std,
            **precision_recall_density_coverage(real, fake, k=3)}


def metrics_over_draws(real: np.ndarray, fake: np.ndarray, draws: int, fd_name: str, kid_name: str,
                       fd: bool = True) -> dict:
    """KID and the k-NN metrics on `draws` disjoint, equal draws of the samples: mean and sample
    sd of each. The Fréchet distance is computed once on all samples: a 1,280-d covariance from
    one ~100-sample draw is singular, and its matrix square root costs more than all the rest.

    With ~100 training images one draw's k-NN metrics move by several points from seed set
    to seed set; the sd says how much of a difference between arms is that noise. fd=False
    leaves the Fréchet distance out (its 1,280-d matrix square root takes tens of seconds on a
    busy CPU: too slow to repeat during training).
    """
    parts = [m for m in np.array_split(fake, draws) if len(m) > 3]
    per_draw = []
    for part in parts:
        kid, kid_std = kernel_inception_distance(real, part, num_subsets=50, subset_size=min(1000, len(real), len(part)))
        per_draw.append({kid_name: kid, f"{kid_name}_std": kid_std, **precision_recall_density_coverage(real, part, k=3)})
    out = {}
    if fd:
        out[fd_name] = frechet_distance_between(real, fake)
    for key in per_draw[0]:
        values = np.array([d[key] for d in per_draw], dtype=float)
        out[key] = float(values.mean())
        if not key.endswith("_std"):
            out[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["draws"], out["draw_size"] = len(parts), int(min(len(p) for p in parts))
    # What a draw of samples from the real images' own distribution would cover: the scale for
    # "coverage" (0.89 for 103 faces against 110 samples; copies of the data score above it).
    out["coverage_same_distribution"] = expected_coverage(len(real), out["draw_size"], k=3)
    return out


def _nearest_distance(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    d = torch.cdist(torch.from_numpy(a).double(), torch.from_numpy(b).double())
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values.numpy()


def memorisation(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """How close samples sit to their nearest training image, against the data's own spacing.

    ratio = median(sample -> nearest training image) / median(training image -> nearest other
    one), in feature space. Near 1: samples are as far from the data as the images are from each
    other; well below 1: samples hug training images. near_copy_share: samples closer to a
    training image than 95 % of training images are to their nearest neighbour.
    """
    real_nn = _nearest_distance(real, real, exclude_self=True)
    fake_nn = _nearest_distance(fake, real)
    return {"memorisation_ratio": float(np.median(fake_nn) / np.median(real_nn)),
            "near_copy_share": float((fake_nn < np.quantile(real_nn, 0.05)).mean())}


@torch.no_grad()
def trajectory_statistics(generator: Generator, ws: torch.Tensor, z: torch.Tensor, image_seeds: int = 64,
                          moving_threshold: float = 0.01) -> dict:
    """How w moves over steps 1..S (ws: (S+1, B, w_dim)): displacement, contraction, divergence,
    stalling, and the share of seeds still moving at each step."""
    max_steps = ws.shape[0] - 1
    disp = (ws[1:] - ws[:-1]).norm(dim=-1)                               # (S, B): ||w_h - w_{h-1}||
    ratio = disp[1:] / disp[:-1].clamp(min=1e-12)                         # (S-1, B): < 1 means contracting
    H = generator.num_steps
    norm_at_H = ws[min(H, max_steps)].norm(dim=-1)
    final_norm = ws[-1].norm(dim=-1)
    diverged = ~torch.isfinite(final_norm) | (final_norm > 10 * norm_at_H.median())
    # "Moving": this step still displaces w by more than 1 % of the first step's displacement.
    moving = disp > moving_threshold * disp[0].clamp(min=1e-12)
    stalled = disp[-1] < 1e-3 * disp[0].clamp(min=1e-12)
    # Mean absolute pixel change between successive frames, for the first image_seeds seeds.
    frames = trajectory(generator, z[:image_seeds], max_steps).images    # (S+1, b, C, R, R)
    image_change = (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3, 4)) / 2  # in units of the [0, 1] range
    return {
        "steps": list(range(1, max_steps + 1)),
        "displacement_mean": disp.mean(dim=1).tolist(), "displacement_std": disp.std(dim=1).tolist(),
        "contraction_ratio_median": [None] + ratio.median(dim=1).values.tolist(),
        "moving_share": moving.float().mean(dim=1).tolist(), "moving_threshold": moving_threshold,
        "image_change_mean": image_change.tolist(),
        "diverged_share": diverged.float().mean().item(), "stalled_share": stalled.float().mean().item(),
        "num_seeds": z.shape[0],
    }


def evaluate(generator: Generator, real: np.ndarray, steps: list[int], num_samples: int, extractor: Extractor,
             batch: int = 64, progress: bool = True, fd_name: str = "fd_effnet", draws: int = 1,
             data: Optional[np.ndarray] = None, trajectories: bool = True, fd: bool = True) -> dict:
    """The per-step metrics and trajectory statistics of one generator (seeds 0..num_samples-1);
    with `data` (the training images, uint8 N x R x R x C) also each step's seed diversity.

    The styles of every step come from one pass of the recursion (the same numbers as running
    exactly h steps, since each step is a pure function of the previous state); only the
    requested steps are decoded and embedded.
    """
    kid_name = "kid" if fd_name == "fid" else "kid_effnet"
    z = seeds_to_z(list(range(num_samples)), generator.z_dim)
    ws = torch.cat([trajectory(generator, chunk, max(steps), decode=False).ws for chunk in z.split(256)], dim=1)
    per_step = []
    # Identical styles make identical images (the decoder is deterministic in eval mode), so
    # identical metrics: a one-pass mapper is a fixed point after step 1, and is decoded once.
    seen: dict[str, dict] = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(steps), desc="steps", dynamic_ncols=True)
    for h in steps:
        key = hashlib.sha256(ws[h].cpu().numpy().tobytes()).hexdigest()
        if key not in seen:
            with torch.no_grad():
                images = torch.cat([generator.synthesize(chunk) for chunk in ws[h].split(batch)])   # exactly h steps
            fake = extract(extractor, images, batch)
            seen[key] = {**metrics_over_draws(real, fake, draws, fd_name, kid_name, fd), **memorisation(real, fake),
                         **(seed_diversity(images, data) if data is not None else {})}
        per_step.append({"steps": h, **seen[key]})
        if bar:
            bar.update(1)
            bar.set_postfix(h=h, recall=f"{per_step[-1]['recall']:.3f}")
    if bar:
        bar.close()
    return {"per_step": per_step, "kid_name": kid_name,
            **({"trajectory": trajectory_statistics(generator, ws, z)} if trajectories else {})}


class TrainingEvaluation:
    """What --eval-every measures while training: the generator at its trained H, seeds
    0..num_samples-1 in `draws` draws, against the training set (features cached once)."""

    def __init__(self, data_dir: str, num_samples: int, draws: int = DRAWS,
                 extractor: Optional[Extractor] = None, device: torch.device | str = "cpu"):
        """device: where the generator lives; the feature network goes there too (left on the
        CPU, it meets the generator's images on the device and the evaluation fails)."""
        self.extractor = extractor or EfficientNetLite0Features()
        if isinstance(self.extractor, torch.nn.Module):
            self.extractor = self.extractor.to(device)
        self.real = real_features(data_dir, self.extractor, 50_000)
        self.data = load_prepared(data_dir).images[:50_000]
        self.num_samples, self.draws = num_samples, draws

    def __call__(self, generator: Generator) -> dict:
        result = evaluate(generator, self.real, [generator.num_steps], self.num_samples, self.extractor,
                          progress=False, draws=self.draws, data=self.data, trajectories=False, fd=False)
        return result["per_step"][0]


def sample_grid_uri(generator: Generator, steps: list[int], seeds: int = 8) -> str:
    """Rows: seeds 0..7; columns: the image after each h in steps. As a PNG data URI."""
    grid = refinement_grid(generator, range(seeds), steps)
    image = to_pil(grid)
    image = image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_report(results: list[dict], grids: list[str], path: Path, fd_name: str = "fd_effnet") -> None:
    """One self-contained HTML file: metric curves, displacement curves, sample grids."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    kid_name = "kid" if fd_name == "fid" else "kid_effnet"
    names = [fd_name, kid_name, "precision", "recall", "density", "coverage"]
    fd_title = "FID (lower is better)" if fd_name == "fid" else "FD-EffNet (lower is better)"
    kid_title = "KID" if fd_name == "fid" else "KID-EffNet (lower is better)"
    fig = make_subplots(rows=2, cols=3, subplot_titles=[fd_title, kid_title, "precision", "recall", "density", "coverage"])
    colors = ["#1f77b4", "#d62728"]
    for i, r in enumerate(results):
        label = f"{Path(r['checkpoint']).name} ({r['mapper']})"
        for k, name in enumerate(names):
            fig.add_scatter(x=[p["steps"] for p in r["per_step"]], y=[p.get(name) for p in r["per_step"]],   # no FD when fd=False
                            mode="lines+markers", name=label, legendgroup=label, showlegend=k == 0,
                            line=dict(color=colors[i % 2]), row=k // 3 + 1, col=k % 3 + 1)
        for k in range(len(names)):
            fig.add_vline(x=r["trained_steps"], line_dash="dot", line_color=colors[i % 2], row=k // 3 + 1, col=k % 3 + 1)
    fig.update_xaxes(type="log", title_text="refinement steps h")
    fig.update_layout(height=650, title="Metrics vs refinement steps (dotted: trained H)")
    disp = go.Figure()
    for i, r in enumerate(results):
        t = r["trajectory"]
        disp.add_scatter(x=t["steps"], y=t["displacement_mean"], mode="lines+markers", name=Path(r["checkpoint"]).name,
                         error_y=dict(type="data", array=t["displacement_std"], visible=True), line=dict(color=colors[i % 2]))
    disp.update_layout(height=380, title="Mean ‖w_h − w_{h−1}‖ over seeds (error bars: std)",
                       xaxis_title="step h", yaxis_title="displacement", yaxis_type="log")
    rows = []
    for r, grid in zip(results, grids):
        t = r["trajectory"]
        rows.append(f"<h3>{Path(r['checkpoint']).name} ({r['mapper']}, trained H = {r['trained_steps']})</h3>"
                    f"<p>Diverged: {100 * t['diverged_share']:.1f}% of {t['num_seeds']} seeds; stopped moving: "
                    f"{100 * t['stalled_share']:.1f}%. Columns of the grid: h = {', '.join(map(str, r['steps']))}.</p>"
                    f"<img src='{grid}' alt='samples per step'>")
    html = ("<html><head><meta charset='utf-8'><title>RTM evaluation</title></head><body style='font-family:sans-serif'>"
            f"<h1>RTM evaluation</h1><p>{results[0]['num_samples']} samples per h vs {results[0]['num_real']} real "
            f"images of {results[0]['data']}. Features: {results[0]['features']}.</p>"
            + fig.to_html(full_html=False, include_plotlyjs=True)
            + disp.to_html(full_html=False, include_plotlyjs=False) + "".join(rows) + "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)


def run(checkpoints: list[str], data: str, steps: list[int], num_samples: int, out: Optional[str],
        extractor: Optional[Extractor] = None, num_real: int = 50_000, progress: bool = True,
        inception: Optional[str] = None, draws: int = 1, fd: bool = True) -> list[dict]:
    """inception: path of FID Inception-v3 weights; then the distance is standard FID ("fid").
    fd=False leaves the Fréchet distance out (quick evaluations: its matrix square root is
    seconds per step count, and on ~100 images it is biased anyway; KID is not)."""
    if inception:
        extractor, fd_name, feature_name, cache_name = load_fid_inception(inception), "fid", INCEPTION_NAME, "inception"
    else:
        extractor, fd_name, feature_name, cache_name = (extractor or EfficientNetLite0Features(), "fd_effnet",
                                                        FEATURE_NAME, "effnet-lite0")
    real = real_features(data, extractor, num_real, cache_name)
    data_images = load_prepared(data).images[:num_real]
    results, grids = [], []
    for folder in checkpoints:
        start = time.perf_counter()
        generator, meta = load_checkpoint(folder)
        result = {"schema": SCHEMA_VERSION, "checkpoint": str(folder), "mapper": generator.config.mapper.kind,
                  "trained_steps": generator.num_steps, "data": str(data), "num_real": len(real),
                  "num_samples": num_samples, "seeds": f"0..{num_samples - 1}", "features": feature_name, "k": 3,
                  "fd_name": fd_name, "steps": steps, "training_step": meta.get("step"),
                  **evaluate(generator, real, steps, num_samples, extractor, progress=progress, fd_name=fd_name,
                              draws=draws, data=data_images, fd=fd)}
        result["wall_time_s"] = time.perf_counter() - start
        (Path(folder) / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
        results.append(result)
        grids.append(sample_grid_uri(generator, steps))
    report = Path(out) if out else Path(checkpoints[0])
    write_report(results, grids, report / ("compare_report.html" if len(checkpoints) > 1 else "eval_report.html"),
                 fd_name)
    return results
