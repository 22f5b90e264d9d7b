"""The objectives the one trainer (train/trainer.py) can optimise, by --objective name."""

from __future__ import annotations

from .base import Objective


def make_objective(name: str, run) -> Objective:
    """The objective `name` for this run (imported on demand: each brings its own modules)."""
    if name == "imle":
        from .rs_imle import RSIMLE
        return RSIMLE(run)
    if name == "adversarial":
        from .adversarial import Adversarial
        return Adversarial(run)
    raise ValueError(f"unknown objective {name!r}; choose imle or adversarial")


__all__ = ["Objective", "make_objective"]
