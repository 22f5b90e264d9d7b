"""What a training step asks of the machine, counted on any device (bench_train, and the CPU test
that a step makes no host sync).

`HostSyncs`: calls that make the host wait for the device: reading a tensor's value (`.item()`,
`float()`, `bool()` as in `if tensor:`, `.tolist()`, `.numpy()`) or copying it to the CPU. On a
CPU they cost nothing, but each is a stall on a GPU, so they are counted wherever the code runs.
`OpCounter`: the ATen operators a step dispatches (each one at least one kernel launch on a GPU
unless compiled into fused kernels).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "_local_scalar_dense"}


class HostSyncs(TorchFunctionMode):
    """Counts host syncs (by name in `.calls`) while active: `with HostSyncs() as syncs: ...`."""

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING or (name in ("cpu", "to") and _to_host(args, kwargs or {})):
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _to_host(args, kwargs) -> bool:
    """A copy from a non-CPU tensor to the CPU (on a CPU tensor, .cpu() is free: not counted)."""
    tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if tensor is None or tensor.device.type == "cpu":
        return False
    if not kwargs and len(args) == 1:
        return True          # .cpu()
    target = kwargs.get("device", args[1] if len(args) > 1 else None)
    return isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu"


class OpCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while active (`.total`, `.ops` by name)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())
