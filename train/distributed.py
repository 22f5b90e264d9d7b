"""Process groups for `torchrun`: NCCL on GPUs, gloo on CPUs; a no-op for one process.

    torchrun --nproc_per_node=4 -m train.train --preset gpu --data ...          # one machine
    torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=HOST:29500 \\
             --nproc_per_node=8 -m train.train ...                                # several

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them we run as a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available; use --device cpu")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def rank_from_environment() -> int:
    """This process's rank as torchrun gives it, known before the process group forms."""
    return int(os.environ.get("RANK", "0"))


def world_size_from_environment() -> int:
    """The number of processes torchrun started, known before the process group forms."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(preference: str = "auto") -> DistInfo:
    world_size = world_size_from_environment()
    rank, local_rank = rank_from_environment(), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # device_id binds the process group to this rank's GPU at once (NCCL otherwise guesses it
        # at the first collective, and may warn or hang if it guesses another).
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """(…) on every rank -> (world_size, …) on every rank."""
    if not info.enabled:
        return tensor[None]
    out = [torch.empty_like(tensor) for _ in range(info.world_size)]
    dist.all_gather(out, tensor.contiguous())
    return torch.stack(out)


def all_gather_object(obj, info: DistInfo) -> list:
    """Any picklable object of every rank, as a list in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.item() / info.world_size


def mean_over_ranks(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a tensor over the ranks, kept on the device (no host sync)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / info.world_size


def agree(flags: list[bool], info: DistInfo) -> list[bool]:
    """Each flag true on every rank if it is true on any: decisions that hang on a rank's own
    clock (stop, save), made the same everywhere, or one rank would leave while another waits in
    the next collective. One all-reduce: call it where every rank calls it, at the same step."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """Average .grad over ranks in one flat all-reduce (what DDP does, by hand): the adversarial
    loop alternates G and D and freezes one while the other steps, which DDP's hooks resent."""
    if not info.enabled:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= info.world_size
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p))
