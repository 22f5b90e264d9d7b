"""Time work on the device without making the host wait for it.

On a GPU the host only queues kernels: a clock read on the host around a selection round times
its launch, not its work, and waiting for the work would stall the steps queued behind it. So
marks are CUDA events, recorded in the stream's order and read later, when the host waits
anyway (a log step). On a CPU the work is done when the call returns: marks are perf_counter.
"""

from __future__ import annotations

import time

import torch


class DeviceClock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> int:
        """A mark at this point of the device's work; its index, for seconds()."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())
        return len(self.marks) - 1

    def seconds(self, start: int, end: int) -> float:
        """The device's time between two marks (on CUDA, waits until the second is reached)."""
        a, b = self.marks[start], self.marks[end]
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b) / 1000
        return b - a
