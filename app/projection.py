"""The app's maps: the command that fits a checkpoint's map (rtm_core/projection.py holds the
map itself), and the fisheye of a path's end.

    python -m app.projection --checkpoint checkpoints/noto-faces-rtm --seeds 1000
"""

from __future__ import annotations

import argparse
from typing import Optional

import numpy as np

from rtm_core.projection import METHODS, make_projection


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m app.projection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder; projection.npz is written into it")
    parser.add_argument("--seeds", type=int, default=1000, help="reference seeds (each gives H+1 points)")
    parser.add_argument("--method", choices=METHODS, default="umap")
    args = parser.parse_args(argv)
    path, points = make_projection(args.checkpoint, args.seeds, args.method)
    print(f"wrote {path}: {points} reference points ({args.seeds} seeds x {points // args.seeds} steps), "
          f"{args.method.upper()}, {path.stat().st_size / 1e6:.1f} MB")


TAIL_BEHIND = 0.8        # the map's fisheye starts where 80 % of w's path is walked, or sooner:
MAP_APART = 0.03         # where a step lands within 3 % of the map's width of a later one


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


if __name__ == "__main__":
    main()
