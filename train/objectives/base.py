"""What an objective is to the one trainer (train/trainer.py).

The trainer owns everything a run has whatever it optimises: the data, the generator and its
EMA, the step counter, the learning-rate schedule, finiteness, saving and resuming, the
seed-diversity probe, evaluations and progress. An objective owns what it adds: its optimizers
and any networks of its own (RS-IMLE's search space and latents; the adversarial objective's
discriminator), and what one training step does with them.

The trainer calls, in this order:
    objective = Objective(run)                 # after the generator is built, before a resume
    objective.load_state_dict(saved)           # --resume only
    objective.opening_records()                # into metrics.jsonl, once the run folder opens
    every step:   objective.before_step(run, clock)
                  metrics = objective.step(run, rows, lr_factor)   # 0-d tensors, no host sync
                  (the trainer updates the EMA: trainer.training_step, which --cuda-graph captures;
                  lr_factor is then a 0-d tensor on the device)
    at log steps: objective.records(run)         # into metrics.jsonl: what it kept on the device
                  objective.status(values)
    at saves:     objective.state_dict(), objective.extra_files(), objective.weight_change()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..run import Cadence
    from ..trainer import Run


class Objective:
    """The base every objective extends; the defaults are those of an objective with no state."""

    name = ""
    averaged: tuple[str, ...] = ()        # metrics that differ by rank: averaged over ranks at log time
    diverged_hint = "Lower --lr or raise --warmup-images"
    optimizers: list[torch.optim.Optimizer]

    def __init__(self, run: "Run"):
        self.optimizers = []

    def describe(self) -> str:
        """What the setup line says of this objective, after the generator's size."""
        return ""

    def opening_records(self) -> list[dict]:
        """metrics.jsonl lines that describe the objective's setup, written once the run folder opens."""
        return []

    def before_step(self, run: "Run", clock: "Cadence") -> None:
        """Work due before the step at run.step (RS-IMLE: a selection round)."""

    def step(self, run: "Run", rows: torch.Tensor, lr_factor: float) -> dict[str, torch.Tensor]:
        """One training step on this rank's `rows` of the data, every optimizer's rates at
        lr_factor x their base rate. Returns its metrics as tensors on the device."""
        raise NotImplementedError

    def records(self, run: "Run") -> list[dict]:
        """metrics.jsonl lines of work done since the last log step (RS-IMLE: its selection
        rounds), read from the device now, where the host waits anyway."""
        return []

    def log_extra(self) -> dict:
        """Numbers the objective adds to each log record (read at log time only)."""
        return {}

    def status(self, values: dict) -> list[str]:
        """The status line's parts for these metrics (after 'step a/b')."""
        return []

    def weight_change(self) -> dict[str, float]:
        """How far the objective's own networks moved from their initialisation."""
        return {}

    def state_dict(self) -> dict:
        """What --resume needs beyond the generator, its EMA and the step: saved in train_state.pt."""
        return {}

    def load_state_dict(self, saved: dict) -> None:
        pass

    def extra_files(self) -> dict[str, bytes]:
        """Files written beside the checkpoint (atomically, with it)."""
        return {}
