"""--cuda-graph (train/graphed.py), as far as a CPU can test it.

A CUDA graph replays the kernels of the step it recorded, with the arguments they had: the same
operators, the same numbers passed to them, the same addresses read. So the step is graph-safe
when two of its calls at different steps (other rows, learning rate and decay; a selection
round between them) dispatch the same operators with the same non-tensor arguments and read
the tensors they did not make themselves at the same addresses. That is checked here on the CPU,
with two defects that it must catch; a real capture and replay run in the -m cuda test below.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tests.stand_in_runs import in_a_fresh_process
from train.config import ADVERSARIAL_PRESETS, PRESETS, TrainConfig


class StepTrace(TorchDispatchMode):
    """The operators a call dispatches with their non-tensor arguments, and the addresses of the
    tensors it reads but did not make (its inputs from outside: weights, moments, latents, data)."""

    def __init__(self):
        super().__init__()
        self.calls, self.made, self.outside = [], set(), set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        leaves = tree_flatten((args, kwargs or {}))[0]
        if not str(func).startswith("profiler."):     # the optimizer's record_function marks: no kernel
            self.calls.append((str(func), tuple(repr(x) for x in leaves if not isinstance(x, torch.Tensor))))
        for t in leaves:
            if isinstance(t, torch.Tensor) and t.numel() and t.untyped_storage().data_ptr() not in self.made:
                self.outside.add(t.untyped_storage().data_ptr())
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() and t.untyped_storage().data_ptr() not in self.outside:
                self.made.add(t.untyped_storage().data_ptr())
        return out


def traces(run, step, as_tensors: bool):
    """Two calls of the step as GraphedStep makes them (its arguments in tensors that keep their
    place) or as numbers, at different steps with a selection round between them."""
    from train.run import BatchOrder

    order = BatchOrder(run.cfg.seed, run.data.shape[0], run.cfg.batch_size, run.info)
    rows, lr, decay = torch.zeros(run.per_rank_batch, dtype=torch.long), torch.zeros(()), torch.zeros(())
    out = []
    for i, (factor, d) in enumerate([(1.0, 0.9), (0.5, 0.99), (0.25, 0.999)]):
        rows.copy_(order(i))
        lr.fill_(factor)
        decay.fill_(d)
        if i == 2 and hasattr(run.objective, "select_latents"):
            run.objective.select_latents(run)
        with StepTrace() as trace:
            step(rows, lr, decay) if as_tensors else step(rows, factor, d)
        out.append(trace)
    return out[1:]          # the first call makes the optimizer's state: a graph is captured after it


@pytest.fixture
def imle_run(digits, tmp_path):
    from train import trainer

    cfg = TrainConfig(**{**PRESETS["tiny"], "data": digits, "out": str(tmp_path), "progress": False, "threads": 1})
    run = trainer.setup(cfg)
    run.objective.select_latents(run)
    yield run, trainer.training_step(run)
    run.log_file.close()


@pytest.mark.training
def test_the_rs_imle_step_is_graph_safe(imle_run):
    run, step = imle_run
    a, b = traces(run, step, as_tensors=True)
    assert len(a.calls) > 1000 and a.calls == b.calls
    assert a.outside == b.outside


@pytest.mark.training
def test_numbers_that_change_per_step_are_caught(imle_run):
    """The learning rate and decay as numbers: a graph would keep the first step's."""
    run, step = imle_run
    a, b = traces(run, step, as_tensors=False)
    assert a.calls != b.calls


@pytest.mark.training
def test_latents_replaced_instead_of_copied_are_caught(imle_run, monkeypatch):
    """A selection round that replaced the latents tensor: a graph would read the old one."""
    from train.objectives import rs_imle

    run, step = imle_run
    real = rs_imle.reselect

    def fresh(*args, **kwargs):
        selection = real(*args, **kwargs)
        run.objective.latents = None         # as if select_latents assigned the new tensor
        return selection

    monkeypatch.setattr(rs_imle, "reselect", fresh)
    a, b = traces(run, step, as_tensors=True)
    assert a.calls == b.calls and a.outside != b.outside


def test_cuda_graph_is_refused_where_a_replay_would_be_wrong(monkeypatch, tmp_path):
    from train import trainer

    with pytest.raises(ValueError, match="adversarial"):
        TrainConfig(**{**ADVERSARIAL_PRESETS["tiny"], "data": "x", "cuda_graph": True})
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one GPU"):
        trainer.setup(TrainConfig(**{**PRESETS["tiny"], "data": "x", "out": str(tmp_path / "run"), "cuda_graph": True}))
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def on_the_stand_in(few_digits, tmp_path_factory) -> dict:
    return in_a_fresh_process("graph", few_digits, tmp_path_factory.mktemp("graph"))


@pytest.mark.slow
def test_graphed_runs_train_as_eager_ones_on_the_stand_in(on_the_stand_in):
    """GraphedStep itself (warm-up, capture, replays) on the stand-in, whose graph replays its
    record as CUDA does: across a selection round the graphed run ends where the eager one
    does; with the latents replaced at the round instead of copied into, the replays train on
    the old ones and the runs part."""
    graphed, replaced = on_the_stand_in["graphed"], on_the_stand_in["latents-replaced"]
    assert graphed["error"] is None and graphed["max_difference"] < 1e-5, graphed
    assert replaced["error"] is None and replaced["max_difference"] > 1e-4, replaced


@pytest.mark.slow
def test_a_host_read_inside_the_captured_step_stops_the_run_with_a_clear_error(on_the_stand_in):
    error = on_the_stand_in["read-in-step"]["error"]
    assert "could not be captured" in error and "without --cuda-graph" in error


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh runs these)")


@pytest.mark.training
@pytest.mark.cuda
@cuda
def test_cuda_graph_replays_train_as_the_eager_steps_do(few_digits, tmp_path):
    """Two runs from the same start, eager and graphed, without the decoder's noise (its draws
    differ between the two): their weights agree after steps that cross a selection round."""
    from safetensors.torch import load_file

    from train.trainer import train

    base = {**PRESETS["tiny"], "data": few_digits, "progress": False, "device": "cuda", "max_steps": 20,
            "decoder": {"noise": False}, "amp": False}
    train(TrainConfig(**{**base, "out": str(tmp_path / "eager")}))
    train(TrainConfig(**{**base, "out": str(tmp_path / "graphed"), "cuda_graph": True}))
    eager, graphed = (load_file(tmp_path / arm / "checkpoint" / "model.safetensors") for arm in ("eager", "graphed"))
    for name in eager:
        torch.testing.assert_close(graphed[name].float(), eager[name].float(), atol=2e-3, rtol=2e-3)
