"""A stand-in CUDA device for a CPU-only PyTorch: tensors that hold CPU data, say they live on
`cuda:0`, refuse to meet a CPU tensor in one operation (with CUDA's own error message), and
count what would make the host wait for a GPU. Device bugs (a feature extractor never moved,
CPU randomness mixed into device math, a checkpoint loaded onto the device, a blocking copy in
the step) then fail on this CPU in seconds, as they would on a GPU.

    with fake_cuda():                       # torch.cuda.is_available() is True; "cuda" means FakeCuda
        run = setup(cfg)                    # the training code, unchanged
        torch.cuda.set_sync_debug_mode("error")
        run.objective.step(run, rows, 1.0)  # forward, backward, fused AdamW, bf16 autocast

How: a FakeCuda is a wrapper tensor (`__torch_dispatch__`) around a CPU tensor. To C++ it is a
CPU tensor, so autograd and the CPU kernels run it (a tensor that told C++ it was on CUDA would
abort the process at the first backward); to Python it reports cuda:0. Every ATen operator on
it, in forward, backward and the optimizer, passes through `__torch_dispatch__`, which checks
the devices of its arguments and records synchronising operators. `torch.autocast("cuda")`
becomes the CPU's bf16 autocast, which sees these tensors as the CPU tensors they are.

The sync check follows CUDA's own (`torch.cuda.set_sync_debug_mode`): a read of a value on the
host (`.item()`, `if t:`, `.tolist()`, `.cpu()`), a blocking copy from the host (`.to("cuda")`,
`torch.tensor(..., device="cuda")`), and the operators whose output size depends on the data
(`nonzero`, boolean-mask indexing, `masked_select`, `unique`, `repeat_interleave`).

CUDA graphs (torch.cuda.CUDAGraph, torch.cuda.graph) are stood in for by FakeGraph: a capture
records the operators and undoes their writes; a replay runs the record again on the same
tensors, so a graph that would replay stale numbers or read a replaced tensor trains differently
from eager steps, and a sync inside a capture raises.

What it cannot catch: kernels, memory, streams, and the CUDA autocast's own list of operators
(the CPU's differs).
Run it in a fresh process (tests/test_train/test_device_discipline.py does): it patches torch globally.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from typing import Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

FAKE = torch.device("cuda", 0)
MISMATCH = ("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
            "(fake_cuda: {op})")
SYNC = "called a synchronizing CUDA operation (fake_cuda: {op})"
CAPTURE = "CUDA error: operation not permitted when stream is capturing (fake_cuda: {op})"
# copy_ crosses devices on CUDA too (load_state_dict copies CPU weights into device parameters).
CROSS_DEVICE = {"aten.copy_.default", "aten._to_copy.default", "aten.lift_fresh.default"}
# Operators whose output size is known only once the device has computed the data.
DATA_DEPENDENT = {"aten.nonzero.default", "aten.masked_select.default", "aten._unique2.default",
                  "aten.unique_dim.default", "aten.unique_consecutive.default", "aten.repeat_interleave.Tensor",
                  "aten.nonzero_static.default", "aten._local_scalar_dense.default"}
BOOL_INDEXED = {"aten.index.Tensor", "aten.index_put_.default", "aten.index_put.default", "aten._index_put_impl_.default"}
HOST_READS = {"cpu", "numpy", "tolist", "item", "__bool__", "__float__", "__int__", "__index__"}


class SyncCheck:
    """torch.cuda.set_sync_debug_mode's stand-in: 0/"default" counts only, 1/"warn" warns,
    2/"error" raises. `calls` counts every synchronising operation by name, whatever the mode."""

    MODES = {"default": 0, "warn": 1, "error": 2}

    def __init__(self):
        self.mode, self.calls = 0, {}

    def set_mode(self, mode) -> None:
        self.mode = self.MODES[mode] if isinstance(mode, str) else int(mode)

    def __call__(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if capturing():
            raise RuntimeError(CAPTURE.format(op=op))
        if self.mode == 2:
            raise RuntimeError(SYNC.format(op=op))
        if self.mode == 1:
            warnings.warn(SYNC.format(op=op), stacklevel=3)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


syncs = SyncCheck()


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


def _plain(t):
    return t.elem if isinstance(t, FakeCuda) else t


def _leaves(args, kwargs):
    """An operator's arguments, lists (Tensor[], int[]) opened: ATen nests no deeper, and this
    is the stand-in's hottest path (pytree's general flattening costs more than the operators)."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _unwrapped(a):
    if isinstance(a, (list, tuple)):
        return type(a)(_plain(x) for x in a)
    return _plain(a)


def _is_host_array(t) -> bool:
    """A CPU tensor that CUDA would refuse beside a device tensor (a 0-d one it takes as a scalar)."""
    return isinstance(t, torch.Tensor) and not isinstance(t, FakeCuda) and t.dim() > 0 and t.device.type == "cpu"


class FakeCuda(torch.Tensor):
    """CPU data (`elem`) that reports cuda:0. Mixing it with a CPU tensor of more than one
    element (CUDA allows CPU scalars) raises CUDA's device-mismatch error; results stay FakeCuda."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        if isinstance(elem, FakeCuda):
            return elem
        elem = elem.as_subclass(torch.Tensor) if type(elem) is not torch.Tensor else elem
        out = torch.Tensor._make_wrapper_subclass(cls, elem.size(), strides=elem.stride(),
                                                  storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                  layout=elem.layout, device=elem.device,
                                                  requires_grad=elem.requires_grad)
        out.elem = elem.detach() if elem.requires_grad else elem
        return out

    @property
    def device(self) -> torch.device:   # type: ignore[override]
        return FAKE

    @property
    def is_cuda(self) -> bool:   # type: ignore[override]
        return True

    def __reduce_ex__(self, protocol):   # saved as a plain tensor (a real CUDA tensor is saved with its data too)
        return self.elem.clone().__reduce_ex__(protocol)

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"FakeCuda({self.elem!r})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        to_host = name == "to" and _target(args[1:], kwargs) == "cpu"
        if name in HOST_READS or to_host:
            if not kwargs.get("non_blocking"):      # fused AdamW moves found_inf to its group's device, async
                syncs(name)
            plain = [_unwrapped(a) for a in args]
            if name == "cpu":
                return plain[0].clone()
            if to_host:
                rest = [a for a in plain[1:] if not isinstance(a, (str, torch.device))]
                kw = {k: v for k, v in kwargs.items() if k not in ("device", "non_blocking")}
                return plain[0].to(*rest, **kw) if (rest or kw) else plain[0].clone()
            return func(*plain, **kwargs)
        if name == "cuda" or (name == "to" and _target(args[1:], kwargs) == "cuda"):
            rest = [a for a in args[1:] if not isinstance(a, (str, torch.device, FakeCuda))]
            kw = {k: v for k, v in kwargs.items() if k not in ("device", "non_blocking")}
            if not (rest or kw):
                return args[0]
            with torch._C.DisableTorchFunctionSubclass():
                return torch.Tensor.to(args[0], *rest, **kw)
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = str(func)
        leaves = list(_leaves(args, kwargs))
        if op not in CROSS_DEVICE and any(_is_host_array(t) for t in leaves):
            raise RuntimeError(MISMATCH.format(op=op))
        if op in DATA_DEPENDENT or (op in BOOL_INDEXED and any(
                t is not None and t.dtype == torch.bool for t in args[1])):
            syncs(op)
        wrappers = {id(t.elem): t for t in leaves if isinstance(t, FakeCuda)}
        out = func(*(_unwrapped(a) for a in args), **{k: _unwrapped(v) for k, v in kwargs.items()})
        # An in-place operator returns its own (wrapped) argument, as on any device.
        wrap = lambda t: (wrappers[id(t)] if id(t) in wrappers else FakeCuda(t)) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return type(out)(wrap(t) for t in out) if isinstance(out, (list, tuple)) else wrap(out)


class FakeGraph:
    """torch.cuda.CUDAGraph's stand-in. A capture records every operator on the device with the
    tensors it was given and made (a dispatch mode, which sees forward, backward and the
    optimizer alike; work on the host runs once, at the capture, as on CUDA); a replay runs the
    record again on those same tensors, writing each result into the tensor the capture made. Like a CUDA graph it repeats the numbers the capture passed and reads the
    tensors it read then: a value that should have changed from step to step, or a tensor
    replaced rather than updated in place, makes replays train differently from eager steps.
    A sync during the capture raises, as on CUDA."""

    def __init__(self):
        self.record: list = []

    def replay(self) -> None:
        with torch.no_grad():
            for func, args, kwargs, out in self.record:
                fresh = func(*args, **kwargs)
                if not _in_place_or_view(func):
                    for kept, new in zip(tree_flatten(out)[0], tree_flatten(fresh)[0]):
                        if isinstance(kept, torch.Tensor):
                            kept.copy_(new)


def _in_place_or_view(func) -> bool:
    schema = func._schema
    return schema.is_mutable or any(r.alias_info is not None for r in schema.returns)


def _written(func, args, kwargs) -> list:
    """The tensors an operator writes in place (its arguments marked `Tensor(a!)`)."""
    out = []
    for i, argument in enumerate(func._schema.arguments):
        if argument.alias_info is not None and argument.alias_info.is_write:
            value = args[i] if i < len(args) else kwargs.get(argument.name)
            out += [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return out


class _Capture(TorchDispatchMode):
    """Records into `graph` while the operators run. A CUDA capture runs nothing, so each tensor
    an operator writes in place is saved the first time and put back at the end: the capture
    leaves the state as it found it, and the replay that follows is the step."""

    def __init__(self, graph: FakeGraph):
        super().__init__()
        self.graph, self.saved = graph, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        on_device = _making_device_tensor or any(isinstance(t, FakeCuda) for t in _leaves(args, kwargs))
        if str(func).startswith("profiler.") or not on_device:   # host work runs once, at the capture, as on CUDA
            return func(*args, **kwargs)
        if kwargs.get("generator") is not None:
            raise RuntimeError(f"CUDA graph capture: a random draw from a generator of its own ({func}); a replay "
                               f"would repeat its numbers (fake_cuda: register it with the graph, or draw from the "
                               f"default generator)")
        for t in _written(func, args, kwargs):
            if id(t) not in self.saved:
                self.saved[id(t)] = (t, t.detach().clone())
        out = func(*args, **kwargs)
        self.graph.record.append((func, args, kwargs, out))
        return out

    def restore(self) -> None:
        with torch.no_grad():
            for t, before in self.saved.values():
                t.copy_(before)


_capturing: list = []
_making_device_tensor: list = []   # set while a factory makes a "cuda" tensor (on the CPU, then wrapped)


def capturing() -> bool:
    return bool(_capturing)


@contextlib.contextmanager
def _graph(graph: FakeGraph, *args, **kwargs):
    """torch.cuda.graph(g)'s stand-in: what runs inside is recorded into g, and its writes undone."""
    capture = _Capture(graph)
    _capturing.append(graph)
    try:
        with capture:
            yield
    finally:
        _capturing.pop()
        capture.restore()


class _Event:
    """torch.cuda.Event's stand-in: the stand-in's work is done when its call returns."""

    def __init__(self, *args, **kwargs):
        self.time = None

    def record(self, stream=None) -> None:
        self.time = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: "_Event") -> float:
        return 1000 * (end.time - self.time)


class _Stream:
    """A CUDA stream's stand-in: the stand-in runs everything in order on the CPU."""

    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, other) -> None:
        pass

    def synchronize(self) -> None:
        pass


def to_fake(t: torch.Tensor) -> torch.Tensor:
    """`t` as FakeCuda; a parameter stays a parameter (optimizers and named_parameters() see it)."""
    if isinstance(t, FakeCuda):
        return t
    if isinstance(t, torch.nn.Parameter):
        return torch.nn.Parameter(FakeCuda(t.detach()), requires_grad=t.requires_grad)
    return FakeCuda(t)


def module_to_fake(module: torch.nn.Module) -> torch.nn.Module:
    """Every parameter and buffer of `module` as FakeCuda."""
    for m in module.modules():
        for table in (m._parameters, m._buffers):
            for key, t in table.items():
                if t is not None:
                    table[key] = to_fake(t)
    return module


class _Autocast(torch.autocast):
    """torch.autocast("cuda", bf16) as the CPU's bf16 autocast: FakeCuda tensors are CPU tensors to it."""

    def __init__(self, device_type, *args, **kwargs):
        super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)


@contextlib.contextmanager
def fake_cuda():
    """torch as if one CUDA device were present: .to("cuda")/.cuda() on tensors and modules and
    factory functions with device="cuda" make FakeCuda; the CUDA RNG calls act on the CPU's;
    torch.cuda.set_sync_debug_mode drives `syncs`."""
    patches = []

    def patch(owner, name, value):
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    plain_to = torch.Tensor.to

    def upload(t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """A copy from the host: a blocking one makes the host wait for the device (CUDA's sync check says so)."""
        if not kwargs.get("non_blocking"):      # any size: CUDA copies and waits even for one number
            syncs("copy from the host")
        rest = [a for a in args if not isinstance(a, (str, torch.device, FakeCuda))]
        kw = {k: v for k, v in kwargs.items() if k not in ("device", "non_blocking")}
        return to_fake(plain_to(t, *rest, **kw) if (rest or kw) else t.clone())

    def tensor_to(self, *args, **kwargs):
        if not isinstance(self, FakeCuda) and _target(args, kwargs) == "cuda":
            return upload(self, *args, **kwargs)
        return plain_to(self, *args, **kwargs)

    def tensor_cuda(self, *args, **kwargs):
        return upload(self, **kwargs) if not isinstance(self, FakeCuda) else self

    tensor_to.__name__, tensor_cuda.__name__ = "to", "cuda"     # FakeCuda.__torch_function__ goes by name
    patch(torch.Tensor, "to", tensor_to)
    patch(torch.Tensor, "cuda", tensor_cuda)
    for factory in ("zeros", "ones", "empty", "randn", "rand", "randint", "arange", "full", "tensor", "randperm",
                    "zeros_like", "ones_like", "empty_like", "randn_like", "rand_like", "full_like", "linspace", "eye"):
        original = getattr(torch, factory)

        def made(*args, _original=original, _name=factory, **kwargs):
            cuda = _target((), kwargs) == "cuda"
            if cuda:
                kwargs = {**kwargs, "device": "cpu"}
                if _name == "tensor":               # made on the host and copied over, whatever its size
                    syncs("torch.tensor from the host")
                _making_device_tensor.append(True)
                try:
                    out = _original(*args, **kwargs)
                finally:
                    _making_device_tensor.pop()
                return FakeCuda(out)
            return _original(*args, **kwargs)
        patch(torch, factory, made)

    class Generator(torch.Generator):
        """A "CUDA" generator is a CPU one that says cuda:0: draws on `gen.device` go through the factories above."""

        def __new__(cls, device="cpu"):
            return super().__new__(cls, device="cpu")

        def __init__(self, device="cpu"):
            self.fake = torch.device(device).type == "cuda"

        @property
        def device(self):
            return FAKE if self.fake else torch.device("cpu")

    patch(torch, "Generator", Generator)
    # Optimizers and clip_grad_norm_ group tensors by the device C++ sees (the CPU, for FakeCuda)
    # and move their 0-d helpers there: the groups of FakeCuda tensors are cuda:0's, as on a GPU.
    original_group = torch.utils._foreach_utils._group_tensors_by_device_and_dtype

    def group(tensorlistlist, with_indices=False):
        grouped = original_group(tensorlistlist, with_indices)
        return {((FAKE if any(isinstance(t, FakeCuda) for t in lists[0]) else device), dtype): value
                for (device, dtype), value in grouped.items() for lists in [value[0]]}
    for owner in (sys.modules["torch.utils._foreach_utils"], sys.modules["torch.optim.optimizer"],
                  sys.modules["torch.nn.utils.clip_grad"]):
        patch(owner, "_group_tensors_by_device_and_dtype", group)
    patch(torch, "autocast", _Autocast)
    # Wrapper tensors cannot be views made in inference mode: no_grad stands in for it (already
    # decorated functions included), which changes no device and no value.
    inference_mode = torch.autograd.grad_mode.inference_mode
    def enter(self):
        self.fake_grad = torch.is_grad_enabled()
        torch._C._set_grad_enabled(self.fake_grad and not self.mode)

    patch(inference_mode, "__enter__", enter)
    patch(inference_mode, "__exit__", lambda self, *exc: torch._C._set_grad_enabled(self.fake_grad))
    patch(torch.cuda, "is_available", lambda: True)
    patch(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    patch(torch.cuda, "device_count", lambda: 1)
    patch(torch.cuda, "get_device_name", lambda device=None: "fake_cuda (the CPU)")
    patch(torch.cuda, "get_rng_state_all", lambda: [torch.get_rng_state()])
    patch(torch.cuda, "set_rng_state_all", lambda states: _set_cpu_rng(states[0]))
    patch(torch.cuda, "get_rng_state", lambda device=None: torch.get_rng_state())
    patch(torch.cuda, "set_rng_state", lambda state, device=None: _set_cpu_rng(state))
    patch(torch.cuda, "synchronize", lambda device=None: None)
    patch(torch.cuda, "set_device", lambda device: None)
    patch(torch.cuda, "manual_seed_all", lambda seed: None)
    patch(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    patch(torch.cuda, "max_memory_allocated", lambda device=None: 0)
    patch(torch.cuda, "CUDAGraph", FakeGraph)
    patch(torch.cuda, "graph", _graph)
    patch(torch.cuda, "Stream", _Stream)
    patch(torch.cuda, "Event", _Event)
    patch(torch.cuda, "current_stream", lambda device=None: _Stream())
    patch(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    patch(torch.cuda, "set_sync_debug_mode", syncs.set_mode)
    patch(torch.cuda, "get_sync_debug_mode", lambda: syncs.mode)
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
        syncs.set_mode(0)
        for owner, name, value in reversed(patches):
            setattr(owner, name, value)


def _set_cpu_rng(state: torch.Tensor) -> None:
    if not isinstance(state, torch.Tensor) or isinstance(state, FakeCuda) or state.device.type != "cpu":
        raise TypeError("RNG state must be a torch.ByteTensor on the CPU (fake_cuda: it was loaded onto the device)")
    torch.set_rng_state(state)
