"""Reach into the recursion: change one latent token between outer steps and see what follows.

An intervention is a function `(step, state) -> state` that the stepping loop
(`iter_steps(..., intervene=...)`, `trajectory(..., intervene=...)`) calls after every outer
step, before that step's w is read out; step 0 is the initial state. It must return a new
state (states are immutable) and leave it alone at steps it does not touch, so that with no
intervention the trajectory is the same, bit for bit.

`TokenIntervention` is the one the app offers, on RTM's slow state z_H (the tokens that the
readout turns into w), from step `step` on:
    freeze    the token keeps the value it had at `step`
    knockout  the token is held at its initial value (with state_init "fixed", the start every seed
              shares; with "input", the seed's own input injection)
    swap      at `step` the token takes the donor seed's value at that step; the recursion
              then carries on from the mixed state (the donor's own trajectory is unchanged)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from .mapper import MapperState

Intervention = Callable[[int, MapperState], MapperState]
KINDS = ("freeze", "knockout", "swap")


@dataclass
class TokenIntervention:
    """One token of z_H, from one step on. For "swap", `donor` is the donor seed's z_H at
    `step` (T, d) or (B, T, d): take it from `trajectory(..., tokens=True).tokens[step]`."""

    kind: str
    token: int
    step: int
    donor: Optional[torch.Tensor] = None
    _initial: Optional[torch.Tensor] = None    # the token at step 0 (what a knockout holds); set at every step 0,
    _held: Optional[torch.Tensor] = None       # so one object serves any number of trajectories

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"intervention kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("token", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"intervention {name} must be an integer >= 0, got {value!r}")
        if (self.kind == "swap") != (self.donor is not None):
            raise ValueError("a swap needs the donor seed's tokens (donor=...), and only a swap takes them")

    def __call__(self, step: int, state: MapperState) -> MapperState:
        z_H = state.z_H
        if z_H.ndim != 3:
            raise ValueError("token interventions need RTM's tokens; a one-pass MLP mapper has none")
        if not 0 <= self.token < z_H.shape[1]:
            raise ValueError(f"token must be in [0, {z_H.shape[1] - 1}], got {self.token}")
        if step == 0:
            self._initial, self._held = z_H[:, self.token].clone(), None
        if step < self.step or (self.kind == "swap" and step > self.step):
            return state
        if self.kind == "swap":
            value = self.donor.to(z_H)[..., self.token, :].expand_as(z_H[:, self.token])
        elif self.kind == "knockout":
            value = self._initial
        else:
            if step == self.step:
                self._held = z_H[:, self.token].clone()
            value = self._held
        z_H = z_H.clone()
        z_H[:, self.token] = value
        return replace(state, z_H=z_H)
