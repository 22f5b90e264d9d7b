"""A whole training step captured once as a CUDA graph and replayed (--cuda-graph).

An eager RS-IMLE step launches some 2,700 operators from Python; on a fast GPU at the few-shot
recipe's batch the launches, not the kernels, set the pace. A CUDA graph records the kernels of
one step (forward under autocast, backward, clipping, the finiteness guard, fused AdamW, the
EMA) and replays them with one launch.

A replay repeats exactly what was recorded, reading and writing the same addresses. So the step
must take everything that changes from step to step in tensors that keep their place:
- its arguments (the rows of the batch, the learning-rate factor, the EMA's decay) are copied
  into this class's static tensors before each replay;
- the state it reads (the weights, the optimizer's moments and learning rates, the selected
  latents, the device's step count) is updated in place, never replaced: a selection round
  copies its latents into the captured buffer (train/objectives/rs_imle.py);
- its metrics come back in tensors the next replay overwrites: the trainer reads them at the
  log step, before the next step.
Randomness drawn from the default CUDA generator (the decoder's noise) advances at each replay,
as PyTorch arranges for graphs. A stream seeded per step (the adversarial objective's
augmentations) would repeat, so only RS-IMLE is graphed (TrainConfig checks).

The first WARMUP steps run eagerly on a side stream, as PyTorch's guide to whole-network capture
asks (the optimizer's state and cuBLAS's workspaces exist before the capture); the capture is the
next step, replayed at once; every later step is a replay.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

import torch

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict]


class GraphedStep:
    """`step(rows, lr_factor, decay) -> metrics` run through one CUDA graph. Call it as the step
    itself, with numbers for lr_factor and decay."""

    WARMUP = 3

    def __init__(self, step: Step, batch_rows: int, device: torch.device):
        self.step, self.device = step, device
        self.rows = torch.zeros(batch_rows, dtype=torch.long, device=device)
        self.lr_factor = torch.zeros((), device=device)
        self.decay = torch.zeros((), device=device)
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.metrics: dict = {}
        self.eager_steps = 0

    def __call__(self, rows: torch.Tensor, lr_factor: float, decay: float) -> dict:
        self.rows.copy_(rows)
        self.lr_factor.fill_(lr_factor)
        self.decay.fill_(decay)
        if self.graph is not None:
            self.graph.replay()
            return self.metrics
        if self.eager_steps < self.WARMUP:
            self.eager_steps += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                metrics = self.step(self.rows, self.lr_factor, self.decay)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return metrics
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.metrics = self.step(self.rows, self.lr_factor, self.decay)
        except RuntimeError as e:   # nothing ran: the weights are those of the last eager step
            raise RuntimeError(f"--cuda-graph: the step could not be captured ({str(e)[:300]}); "
                               f"run without --cuda-graph, and report it with this line") from e
        self.graph = graph
        graph.replay()      # the capture only recorded this step: now it runs
        print("--cuda-graph: the step is captured; every step from here is one replay", file=sys.stderr)
        return self.metrics
