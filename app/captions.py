"""What each refinement step did, in words computed from the trajectory itself.

A caption names the step's role (the shared start, a face still generic, the step the face is
chosen, detail only, beyond the trained H) and gives the figures it rests on: how far w moved as
a share of its whole path, how many pixels changed by more than 3 %, how alike different seeds still are.
Nothing here is canned per seed; every sentence follows from the numbers below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from rtm_core import Generator, seeds_to_z, trajectory

SPREAD_SEEDS = 64        # seeds that measure how alike different seeds are at each step
VISIBLE_LEVELS = 8       # a pixel changed when a channel moved by more than this (of 255: about 3 %)
GENERIC_SPREAD = 0.5     # below half their final spread, different seeds still look alike
HEALED = 0.005           # an intervention is healed once under 0.5 % of the pixels differ
DETAIL_ONLY = 0.01       # under 1 % of w's whole path, or of the pixels changed: only detail


def seed_spread(generator: Generator, steps: int, seeds: int = SPREAD_SEEDS) -> np.ndarray:
    """(steps + 1,): the mean distance of `seeds` seeds' w from their mean after each step, how
    different seeds are from one another as the refinement goes on (0 where they all share w).
    Needed up to the trained H only (beyond it a caption says so instead); the mapper alone, no
    decoding."""
    ws = trajectory(generator, seeds_to_z(range(seeds), generator.z_dim), steps, decode=False).ws.double()
    return (ws - ws.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=1).numpy()


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two uint8 images (or stacks of them) differ: any channel by more than VISIBLE_LEVELS."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > VISIBLE_LEVELS


def shares_start(spread: np.ndarray) -> bool:
    """Whether every seed starts from the same w (RTM's shipped models: a learned start state)."""
    return bool(spread[0] <= 1e-6 * max(float(spread.max()), 1e-12))


@dataclass(frozen=True)
class StepFacts:
    """The figures behind one caption (step h of S)."""
    step: int
    moved: float               # ||w_h - w_(h-1)||
    path_share: float          # moved / the whole path's length
    behind: float              # the share of the path walked by the end of this step
    visible: float             # the share of pixels that changed (VISIBLE_LEVELS) from step h - 1
    spread: float              # seeds' spread at this step / at the trained H (1 = as different as at the end)
    nearest: Optional[int]     # index of the training image nearest to this frame


def step_facts(frames: np.ndarray, displacement: np.ndarray, spread: np.ndarray, trained: int,
               nearest: Optional[Sequence[int]]) -> list[StepFacts]:
    """frames (S+1, R, R, C) uint8, displacement (S,), spread (>= S+1,), nearest (S+1,) or None."""
    total = float(displacement.sum()) or 1.0
    behind = np.concatenate([[0.0], np.cumsum(displacement) / total])
    visible = np.concatenate([[0.0], changed(frames[1:], frames[:-1]).mean(axis=(1, 2))])
    moved = np.concatenate([[0.0], displacement])
    final_spread = spread[min(trained, len(spread) - 1)] or 1.0   # 0 for a one-pass MLP's start only
    return [StepFacts(step=h, moved=float(moved[h]), path_share=float(moved[h] / total), behind=float(behind[h]),
                      visible=float(visible[h]), spread=float(spread[h] / final_spread) if h < len(spread) else 1.0,
                      nearest=int(nearest[h]) if nearest is not None else None)
            for h in range(len(frames))]


def chosen_step(facts: list[StepFacts]) -> Optional[int]:
    """The first step from which the nearest training image no longer changes (None without them)."""
    if not facts or facts[-1].nearest is None:
        return None
    h = len(facts) - 1
    while h > 1 and facts[h - 1].nearest == facts[-1].nearest:
        h -= 1
    return h if h >= 1 else None


def percent(x: float) -> str:
    """A share as a percent people read: 0.4 % stays 0.4 %, 37.2 % becomes 37 %, never "0 %" for a change."""
    p = 100 * x
    if p == 0:
        return "0%"
    if p < 0.1:
        return "< 0.1%"
    return f"{p:.1f}%" if round(p, 1) < 10 else f"{p:.0f}%"


def captions(facts: list[StepFacts], trained: int, shared_start: bool, label: Optional[str] = None) -> list[str]:
    """One caption per step: a headline (what kind of step this is), then the figures. The page
    puts "Step h of S." in front."""
    chosen = chosen_step(facts)
    out = []
    for f in facts:
        if f.step == 0:
            out.append("The start: every seed begins from this same picture (no refinement yet)."
                       if shared_start else "The start: this seed's noise read out before any refinement.")
            continue
        if f.step > trained:
            head = f"Beyond the trained H = {trained}: the model never ran this far while it learned"
            head += "; only detail changes." if f.path_share < DETAIL_ONLY or f.visible < DETAIL_ONLY else "."
        elif f.step == chosen:
            face = f" ({label})" if label else ""
            head = (f"This face is chosen: from here on its nearest training image{face} no longer changes; "
                    f"{percent(f.behind)} of its path is behind it.")
        elif f.spread < GENERIC_SPREAD:
            head = (f"Still a generic face: different seeds look alike here (they differ {percent(f.spread)} "
                    f"as much as at the end).")
        elif f.path_share < DETAIL_ONLY or f.visible < DETAIL_ONLY:
            head = "Only detail changes now."
        else:
            head = "The face takes shape."
        out.append(f"{head} w moved {f.moved:.3g}, {percent(f.path_share)} of its whole path; "
                   f"{percent(f.visible)} of the pixels changed by more than 3%.")
    return out


def describe_change(fraction: list[float]) -> str:
    """An intervention's effect over the steps in one sentence: its peak, and whether the
    recursion healed it (under 0.5 % of the pixels still differ at the last step)."""
    peak = int(np.argmax(fraction)) if fraction else 0
    if not fraction or fraction[peak] == 0:
        return "No pixel differs from the original's by more than 3% at any step."
    said = f"At most {percent(fraction[peak])} of the pixels differ by more than 3%, at step {peak}"
    if fraction[-1] < HEALED:
        healed = next(h for h in range(peak, len(fraction)) if all(f < HEALED for f in fraction[h:]))
        return f"{said}; the recursion healed it by step {healed} (under {percent(HEALED)} differ from there on)."
    return f"{said}; {percent(fraction[-1])} still differ at the last step."
