"""A stand-in CUDA device for a CPU-only PyTorch: tensors that hold CPU data, say they live on
`cuda:0` and refuse to meet a CPU tensor in one operation, with CUDA's own error message. Device
bugs (a feature extractor never moved, CPU randomness mixed into device math, a checkpoint
loaded onto the device) then fail on this CPU in seconds, as they would on a GPU.

    with fake_cuda():                       # torch.cuda.is_available() is True; "cuda" means FakeCuda
        run = setup(cfg)                    # the training code, unchanged

What it covers: every no-grad path (setup, pool selection, probes, EMA, checkpoints, evaluation,
resume). What it cannot: autograd (a subclass without __torch_dispatch__ support in backward
aborts the process: backward runs in the subprocess tests avoid), kernels, memory, streams, bf16
autocast on CUDA, and anything that really synchronises with a device (docs/TRAINING.md).
Run it in a fresh process (tests/test_train/test_device_discipline.py does): it patches torch globally.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
from torch.utils._pytree import tree_flatten, tree_map

FAKE = torch.device("cuda", 0)
METADATA = {"_has_compatible_shallow_copy_type", "__setstate__", "__reduce_ex__", "_is_view", "__get__", "__set__",
            "is_floating_point", "dim", "size", "numel", "__len__", "stride", "is_complex", "requires_grad_",
            "copy_"}   # copy_ crosses devices on CUDA too (load_state_dict copies CPU weights into device parameters)
MISMATCH = ("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
            "(fake_cuda: {op})")


def _target(values, kwargs) -> Optional[str]:
    """The device type ("cuda", "cpu") that a .to()/factory call's arguments ask for, or None."""
    for value in list(values) + [kwargs.get("device")]:
        if isinstance(value, torch.Tensor):
            return value.device.type          # .to(other): FakeCuda reports "cuda"
        if isinstance(value, (str, torch.device)):
            try:
                return torch.device(value).type
            except (RuntimeError, TypeError):
                continue
    return None


class FakeCuda(torch.Tensor):
    """CPU data that reports cuda:0. Mixing it with a CPU tensor of more than one element (CUDA
    allows CPU scalars) raises CUDA's device-mismatch error; results stay FakeCuda."""

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        return torch.Tensor._make_subclass(cls, data.detach().as_subclass(torch.Tensor), data.requires_grad)

    @property
    def device(self) -> torch.device:   # type: ignore[override]
        return FAKE

    @property
    def is_cuda(self) -> bool:   # type: ignore[override]
        return True

    def __reduce_ex__(self, protocol):   # saved as a plain tensor (a real CUDA tensor is saved with its data too)
        with torch._C.DisableTorchFunctionSubclass():
            return self.as_subclass(torch.Tensor).clone().__reduce_ex__(protocol)

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"FakeCuda({self.as_subclass(torch.Tensor)!r})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in ("cpu", "numpy", "tolist", "item") or (name == "to" and _target(args[1:], kwargs) == "cpu"):
            plain = tree_map(lambda t: t.as_subclass(torch.Tensor) if isinstance(t, FakeCuda) else t, args)
            with torch._C.DisableTorchFunctionSubclass():
                if name == "cpu":
                    return plain[0].clone()
                if name == "to":
                    rest = [a for a in plain[1:] if not (isinstance(a, (str, torch.device)))]
                    kw = {k: v for k, v in kwargs.items() if k != "device"}
                    return plain[0].to(*rest, **kw) if (rest or kw) else plain[0].clone()
                return func(*plain, **kwargs)
        if name in ("cuda",) or (name == "to" and _target(args[1:], kwargs) == "cuda"):
            rest = [a for a in args[1:] if not isinstance(a, (str, torch.device, FakeCuda))]
            kw = {k: v for k, v in kwargs.items() if k != "device"}
            with torch._C.DisableTorchFunctionSubclass():
                out = args[0].as_subclass(torch.Tensor).to(*rest, **kw) if (rest or kw) else args[0]
            return FakeCuda(out.as_subclass(torch.Tensor)) if not isinstance(out, FakeCuda) else out
        flat, _ = tree_flatten((args, kwargs))
        if name not in METADATA and any(isinstance(t, torch.Tensor) and not isinstance(t, FakeCuda) and t.dim() > 0 and t.device.type == "cpu"
               for t in flat):
            raise RuntimeError(MISMATCH.format(op=name))
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        return tree_map(lambda t: FakeCuda(t) if type(t) is torch.Tensor else t, out)


def module_to_fake(module: torch.nn.Module) -> torch.nn.Module:
    """Every parameter and buffer of `module` as FakeCuda (parameters keep requires_grad; the
    optimizer and named_parameters() see them as the module's parameters)."""
    for m in module.modules():
        for table in (m._parameters, m._buffers):
            for key, t in table.items():
                if t is not None and not isinstance(t, FakeCuda):
                    table[key] = FakeCuda(t)
    return module


@contextlib.contextmanager
def fake_cuda():
    """torch as if one CUDA device were present: .to("cuda")/.cuda() on tensors and modules and
    factory functions with device="cuda" make FakeCuda; the CUDA RNG calls act on the CPU's."""
    patches = []

    def patch(owner, name, value):
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    plain_to = torch.Tensor.to

    def tensor_to(self, *args, **kwargs):
        if not isinstance(self, FakeCuda) and _target(args, kwargs) == "cuda":
            rest = [a for a in args if not isinstance(a, (str, torch.device, FakeCuda))]
            kw = {k: v for k, v in kwargs.items() if k != "device"}
            return FakeCuda(plain_to(self, *rest, **kw) if (rest or kw) else self)
        return plain_to(self, *args, **kwargs)

    def tensor_cuda(self, *args, **kwargs):
        return FakeCuda(self) if not isinstance(self, FakeCuda) else self

    tensor_to.__name__, tensor_cuda.__name__ = "to", "cuda"     # FakeCuda.__torch_function__ goes by name
    patch(torch.Tensor, "to", tensor_to)
    patch(torch.Tensor, "cuda", tensor_cuda)
    for factory in ("zeros", "ones", "empty", "randn", "rand", "randint", "arange", "full", "tensor", "randperm",
                    "zeros_like", "ones_like", "empty_like", "randn_like", "rand_like", "full_like", "linspace", "eye"):
        original = getattr(torch, factory)

        def made(*args, _original=original, **kwargs):
            cuda = _target((), kwargs) == "cuda"
            if cuda:
                kwargs = {**kwargs, "device": "cpu"}
            out = _original(*args, **kwargs)
            return FakeCuda(out) if cuda else out
        patch(torch, factory, made)
    class Generator(torch.Generator):   # a "CUDA" generator is a CPU one: draws then go through the factories above
        def __new__(cls, device="cpu"):
            return super().__new__(cls, device="cpu")

        def __init__(self, device="cpu"):
            pass

    patch(torch, "Generator", Generator)
    patch(torch.cuda, "is_available", lambda: True)
    patch(torch.cuda, "device_count", lambda: 1)
    patch(torch.cuda, "get_rng_state_all", lambda: [torch.get_rng_state()])
    patch(torch.cuda, "set_rng_state_all", lambda states: _set_cpu_rng(states[0]))
    patch(torch.cuda, "get_rng_state", lambda device=None: torch.get_rng_state())
    patch(torch.cuda, "set_rng_state", lambda state, device=None: _set_cpu_rng(state))
    patch(torch.cuda, "synchronize", lambda device=None: None)
    patch(torch.cuda, "set_device", lambda device: None)
    patch(torch.cuda, "manual_seed_all", lambda seed: None)
    patch(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    patch(torch.cuda, "max_memory_allocated", lambda device=None: 0)
    plain_module_to = torch.nn.Module.to

    def module_to(self, *args, **kwargs):
        if _target(args, kwargs) == "cuda":
            rest = [a for a in args if not isinstance(a, (str, torch.device))]
            kw = {k: v for k, v in kwargs.items() if k != "device"}
            if rest or kw:
                plain_module_to(self, *rest, **kw)
            return module_to_fake(self)
        return plain_module_to(self, *args, **kwargs)

    patch(torch.nn.Module, "to", module_to)
    patch(torch.nn.Module, "cuda", lambda self, device=None: module_to_fake(self))
    try:
        yield
    finally:
        for owner, name, value in reversed(patches):
            setattr(owner, name, value)


def _set_cpu_rng(state: torch.Tensor) -> None:
    if not isinstance(state, torch.Tensor) or isinstance(state, FakeCuda) or state.device.type != "cpu":
        raise TypeError("RNG state must be a torch.ByteTensor on the CPU (fake_cuda: it was loaded onto the device)")
    torch.set_rng_state(state)
