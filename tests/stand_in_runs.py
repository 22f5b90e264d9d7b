"""Training code run on the stand-in CUDA device (tests/fake_cuda.py), each in a fresh process:

    python tests/stand_in_runs.py CASE DATA OUT      # prints one JSON line: what was done

tests/test_train/test_device_discipline.py and test_graphed.py start them (in_a_fresh_process). Cases:
- `paths`: every path around the step (setup, a selection round, the probe, the EMA, a checkpoint,
  the in-training evaluation, --resume, --init-from, the adversarial objective's setup);
- `run-imle`, `run-adversarial`: whole runs (selection rounds, forward with bf16 autocast,
  backward, fused AdamW, EMA, log steps, checkpoints) with --sync-debug: any host sync outside
  log steps and saves raises;
- `inject`: one defect at a time, put where it would be on a GPU; each run must fail;
- `graph`: runs with --cuda-graph against the same run eager, without and with defects that a
  replayed graph cannot survive.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.fake_cuda import FakeCuda, fake_cuda, syncs  # noqa: E402
from train import trainer  # noqa: E402
from train.config import ADVERSARIAL_PRESETS, PRESETS, TrainConfig  # noqa: E402


def config(objective: str, data: str, out: str, **overrides) -> TrainConfig:
    """The objective's tiny preset on the stand-in, with each objective's costlier parts on: the
    perceptual distance (random weights: no file needed) for RS-IMLE, path length for the other."""
    if objective == "imle":
        preset = {**PRESETS["tiny"], "loss_perceptual": 1.0, "perceptual_weights": "random", "perceptual_size": 32}
    else:
        preset = {**ADVERSARIAL_PRESETS["tiny"], "pl_weight": 2.0}
    return TrainConfig(**{**preset, "data": data, "out": out, "progress": False, "device": "cuda", **overrides})


class Features(torch.nn.Module):      # a feature network with weights: it must follow the generator's device
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16 * 16, 8)

    def forward(self, images):
        return self.proj(images.float().mean(1).flatten(1))


def paths(data: str, out: str) -> list[str]:
    from train.evaluation import TrainingEvaluation
    from train.run import DiversityProbe, update_ema

    done = []
    cfg = config("imle", data, out)
    run = trainer.setup(cfg)
    assert isinstance(next(run.model.parameters()), FakeCuda) and run.data.device.type == "cuda"
    done.append("setup")
    run.objective.select_latents(run)
    assert run.objective.latents.device.type == "cuda"
    run.objective.records(run)
    done.append("selection")
    DiversityProbe(run.data, run.model.z_dim).both(run.model, run.ema)
    done.append("probe")
    update_ema(run.ema, run.model, 0.9)
    done.append("ema")
    run.step = 1
    trainer.save_state(run)
    done.append("checkpoint")
    TrainingEvaluation(cfg.data, 40, draws=2, extractor=Features(), device=run.info.device)(run.ema)
    done.append("evaluation")
    trainer.setup(TrainConfig(**{**cfg.__dict__, "resume": True}))
    done.append("resume")
    trainer.setup(TrainConfig(**{**cfg.__dict__, "out": out + "-init", "init_from": out + "/checkpoint"}))
    done.append("init-from")
    gan = config("adversarial", data, out + "-gan")
    g = trainer.setup(gan)
    with torch.no_grad():
        g.objective.judge(g, g.objective.fake_images(g, "generator"), "generator")
    trainer.save_state(g)
    trainer.setup(TrainConfig(**{**gan.__dict__, "resume": True}))
    done.append("adversarial")
    return done


def whole_run(objective: str, data: str, out: str) -> dict:
    """A run to its end with --sync-debug. Whether the decoder ran under bf16 autocast is
    recorded (the stand-in's autocast is the CPU's; the probe and samples run without it)."""
    from contextlib import ExitStack

    from rtm_core import decoder

    autocast = set()

    def recorded(forward):
        def wrapper(self, *args, **kwargs):
            autocast.add(torch.is_autocast_enabled("cpu"))
            return forward(self, *args, **kwargs)
        return wrapper

    with ExitStack() as patches:
        for kind in (decoder.IMLEDecoder, decoder.StyleGAN2Decoder):
            patches.enter_context(mock.patch.object(kind, "forward", recorded(kind.forward)))
        shorter = {"max_steps": 16, "probe_every": 16} if objective == "imle" else {"max_steps": 12, "checkpoint_every": 12}
        trainer.train(config(objective, data, out, sync_debug=True, **shorter))   # IMLE: selection rounds at 0 and 15
    return {"syncs_outside_the_steps": syncs.total, "autocast": sorted(autocast)}


def graphed_against_eager(data: str, out: str) -> dict:
    """One RS-IMLE run eagerly, then with --cuda-graph (the stand-in's graph replays its record
    as CUDA would) as it is and with each defect: across a selection round, without the
    decoder's noise (its draws differ), in fp32 (graphed, autocast caches no weight casts, so
    bf16 gradients of the shared block are summed otherwise) and with the pixel loss alone
    (what is captured does not depend on the loss), how far each graphed run's weights end from the eager run's, or the
    error that stopped it. Defects: "latents-replaced" (a selection round that replaces the
    latents tensor instead of copying into it), "read-in-step" (the EMA's decay read on the
    host: a sync inside the capture)."""
    from safetensors.torch import load_file

    from train import run as run_module
    from train.objectives import rs_imle

    real_select, real_ema = rs_imle.RSIMLE.select_latents, run_module.update_ema

    def latents_replaced(self, run):
        self.latents = None
        return real_select(self, run)

    def decay_read(ema, model, decay):
        return real_ema(ema, model, float(decay))

    def weights(arm: str, graphed: bool) -> dict:
        trainer.train(config("imle", data, f"{out}/{arm}", cuda_graph=graphed, decoder={"noise": False}, amp=False,
                             loss_perceptual=0.0, max_steps=24, checkpoint_every=24))   # a selection round at 15
        return load_file(f"{out}/{arm}/checkpoint/model.safetensors")

    eager, results = weights("eager", False), {}
    for arm, patch in {"graphed": None, "latents-replaced": (rs_imle.RSIMLE, "select_latents", latents_replaced),
                       "read-in-step": (trainer, "update_ema", decay_read)}.items():
        with mock.patch.object(*patch) if patch else contextlib.nullcontext():
            try:
                graphed = weights(arm, True)
            except RuntimeError as e:
                results[arm] = {"error": str(e)[:300]}
                continue
        results[arm] = {"error": None, "max_difference": max(float((eager[k].float() - graphed[k].float()).abs().max())
                                                             for k in eager)}
    return results


class _HostGrad(torch.autograd.Function):
    """The identity forward; its backward scales the gradient by a tensor left on the host."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * torch.ones(grad.shape[1:])


def injected(data: str, out: str) -> dict:
    """Each defect in turn, put in from the first step on (setup stays as it is); each run must
    stop with the error a GPU would give. {defect: its error and the functions it passed through}."""
    from train import losses, run as run_module
    from train.objectives import rs_imle

    real_step, real_forward, real_clip = rs_imle.RSIMLE.step, losses.ImageLoss.forward, torch.nn.utils.clip_grad_norm_

    def images_on_host(self, run, rows, lr_factor):       # the training images left on the host
        run.data = run.data.cpu()
        return real_step(self, run, rows, lr_factor)

    def host_tensor_in_backward(self, fake, *args, **kwargs):
        return real_forward(self, _HostGrad.apply(fake), *args, **kwargs)

    def moments_on_host(self, run, rows, lr_factor):       # AdamW's moments moved to the host
        for state in self.opt.state.values():
            if "exp_avg" in state:
                state["exp_avg"] = state["exp_avg"].cpu()
        return real_step(self, run, rows, lr_factor)

    def ema_from_host_copy(ema, model, decay):
        torch._foreach_lerp_(list(ema.parameters()), [p.detach().cpu() for p in model.parameters()], 1.0 - decay)

    def order_copied_from_host(self, epoch):             # the data order drawn on the host, as it once was
        return torch.randperm(self.n).to(self.info.device)

    def norm_read_every_step(*args, **kwargs):
        norm = real_clip(*args, **kwargs)
        float(norm)
        return norm

    defects = {"host-images": (rs_imle.RSIMLE, "step", images_on_host),
               "host-backward": (losses.ImageLoss, "forward", host_tensor_in_backward),
               "host-optimizer": (rs_imle.RSIMLE, "step", moments_on_host),
               "host-ema": (trainer, "update_ema", ema_from_host_copy),
               "blocking-copy": (run_module.BatchOrder, "permutation", order_copied_from_host),
               "read-per-step": (torch.nn.utils, "clip_grad_norm_", norm_read_every_step)}
    results = {}
    for defect, patch in defects.items():
        results[defect] = {"error": None}
        with mock.patch.object(*patch):
            try:   # a defect of devices shows without --sync-debug (which would stop at the copy to the host first)
                trainer.train(config("imle", data, f"{out}/{defect}", sync_debug=not defect.startswith("host-")))
            except RuntimeError as e:
                results[defect] = {"error": str(e)[:300],
                                   "through": [frame.name for frame in traceback.extract_tb(e.__traceback__)]}
    return results


def in_a_fresh_process(case: str, data: str, out) -> object:
    """CASE in a fresh process (the stand-in patches torch for good): its JSON line."""
    import os
    import subprocess

    done = subprocess.run([sys.executable, __file__, case, data, str(out)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    case, data, out = sys.argv[1:4]
    with fake_cuda():
        if case == "paths":
            result = paths(data, out)
        elif case == "graph":
            result = graphed_against_eager(data, out)
        elif case.startswith("run-"):
            result = whole_run(case.removeprefix("run-"), data, out)
        elif case == "inject":
            result = injected(data, out)
        else:
            raise SystemExit(f"unknown case {case}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
