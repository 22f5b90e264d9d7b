"""Adversarial training (train/objectives/adversarial.py): the objective learns, every part moves, R1 is
lazy and weighted, resume is exact across an R1 step, and 2 ranks make 1 process's update."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train.objectives.adversarial as adversarial
from train import trainer
from train.objectives.adversarial import Adversarial
from rtm_core import load_checkpoint, read_meta
from rtm_core.config import stylegan2_mapping
from train.config import ADVERSARIAL_PRESETS, TrainConfig, parse_args
from train.discriminator import Discriminator, DiscriminatorConfig, minibatch_stddev
from train.init_from import TRAIN_STATE_FILE

ROOT = Path(__file__).resolve().parents[2]


def gan_config(data: str, out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{**ADVERSARIAL_PRESETS["tiny"], "data": data, "out": str(out), "progress": False,
                           "threads": torch.get_num_threads(), **changes})   # fixed for the session (conftest.py)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_discriminator_shapes_and_minibatch_groups():
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=64, channel_max=16))
    assert D(torch.randn(8, 3, 16, 16)).shape == (8,)
    x = torch.randn(8, 2, 4, 4)
    y = minibatch_stddev(x, 4)[:, -1, 0, 0]                 # groups: i % 2 == j % 2
    even = x[0::2].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(y[0::2], even.expand(4), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(y[0], y[1])


@pytest.mark.training
def test_a_tiny_run_separates_real_from_fake_and_moves_every_part(digits, tmp_path):
    folder = trainer.train(gan_config(digits, tmp_path, max_steps=40, log_every=1, checkpoint_every=40))
    log = records(tmp_path)
    # D(real) - D(fake), as probabilities: at the start a random D does no better than chance
    # (measured -0.04 over the first 3 steps); 40 steps later it tells them apart (+0.08).
    probes = [r for r in log if "seed_diversity" in r]   # at the checkpoint (--probe-every 12): raw G beside its EMA
    assert [p["step"] for p in probes] == [12, 24, 36]
    assert all(1 <= p["seed_diversity"][k]["distinct_nearest"] <= 100 for p in probes for k in ("model", "ema"))
    log = [r for r in log if "d_gap" in r]
    first, last = sum(r["d_gap"] for r in log[:3]) / 3, sum(r["d_gap"] for r in log[-10:]) / 10
    assert first < 0.02 and last > 0.04 and last > first + 0.05, (first, last)
    change = read_meta(folder)["weight_change"]
    assert min(change["mapping"], change["synthesis"], change["discriminator"]) > 0.01, change
    g, meta = load_checkpoint(folder)                        # the generator opens as any rtm_core checkpoint
    assert meta["objective"] == "adversarial" and g.config.mapper.kind == "rtm"
    assert (folder / adversarial.DISCRIMINATOR_FILE).is_file()
    assert not any("discriminator" in k for k in g.state_dict())


@pytest.mark.training
def test_r1_is_lazy_and_weighted_by_its_interval(digits, tmp_path, monkeypatch):
    losses, penalties = [], []
    real_step, real_r1 = Adversarial.optimize, Adversarial.r1_step

    def spy_step(self, run, opt, module, loss, what, lr_factor):
        if what == "R1":
            losses.append((run.step, loss.item()))
        return real_step(self, run, opt, module, loss, what, lr_factor)

    def spy_r1(self, run, real, lr_factor):
        penalties.append(real_r1(self, run, real, lr_factor))
        return penalties[-1]

    monkeypatch.setattr(Adversarial, "optimize", spy_step)
    monkeypatch.setattr(Adversarial, "r1_step", spy_r1)
    cfg = gan_config(digits, tmp_path, max_steps=9, r1_every=4, r1_gamma=0.5)
    trainer.train(cfg)
    assert [s for s, _ in losses] == [0, 4, 8]
    for (_, loss), penalty in zip(losses, penalties):
        assert loss == pytest.approx(penalty.item() * 0.5 / 2 * 4, rel=1e-5)


@pytest.mark.training
def test_resume_is_bit_exact_across_an_r1_step(digits, tmp_path):
    trainer.train(gan_config(digits, tmp_path / "straight", max_steps=12, r1_every=4, checkpoint_every=6))
    trainer.train(gan_config(digits, tmp_path / "split", max_steps=6, r1_every=4, checkpoint_every=6))
    trainer.train(gan_config(digits, tmp_path / "split", max_steps=12, r1_every=4, checkpoint_every=6, resume=True))
    a = torch.load(tmp_path / "straight/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "split/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    for part in ("model", "ema", "D"):
        for name, value in a[part].items():
            assert torch.equal(value, b[part][name]), f"{part}.{name}"
    assert a["step"] == b["step"] == 12


@pytest.mark.training
def test_the_trainers_schedule_and_evaluations_work_for_the_adversarial_objective(few_digits, tmp_path, pixel_features):
    """One trainer: --lr-schedule cosine and --eval-every act on the adversarial run as on RS-IMLE's."""
    trainer.train(gan_config(few_digits, tmp_path, max_steps=12, log_every=4, lr_schedule="cosine",
                             lr_final_scale=0.1, eval_every=6, eval_samples=100))
    log = records(tmp_path)
    assert [r["step"] for r in log if r.get("event") == "eval"] == [6, 12]
    rates = [r["lr"] for r in log if "lr" in r]
    assert rates[0] > rates[1] > rates[2] == pytest.approx(0.1 * 2e-3)    # annealed to 0.1 x lr at the last step
    meta = read_meta(tmp_path / "checkpoint")
    assert meta["objective"] == "adversarial" and meta["seed_diversity"]["first"]["step"] == 0


def test_the_objective_and_its_presets_come_from_the_flags():
    cfg = parse_args(["--objective", "adversarial", "--preset", "cpu", "--data", "x"])
    assert cfg.objective == "adversarial" and cfg.r1_every == 16 and cfg.lr == 2.5e-3 and cfg.grad_clip == 0
    for name, preset in ADVERSARIAL_PRESETS.items():
        TrainConfig(**preset).model_config(32, 3)
    sg2 = parse_args(["--objective", "adversarial", "--preset", "cpu", "--data", "x", "--mapper.kind", "mlp",
                      "--mapper.mlp-layer", "equalized", "--mapper.mlp-gain", "sqrt2", "--mapper.lr-multiplier", "0.01",
                      "--mapping-lr-scale", "1"])
    assert {k: sg2.mapper[k] for k in stylegan2_mapping()} == stylegan2_mapping()
    with pytest.raises(SystemExit):
        parse_args(["--objective", "adversarial", "--augment", "rotate", "--data", "x"])


RUN = "import sys\nfrom train.train import main\nmain(sys.argv[1:])\n"


@pytest.mark.training
@pytest.mark.slow
def test_two_process_gloo_training_equals_one_process(digits, tmp_path):
    """Generator and discriminator: two ranks on halves of the same global batch (minibatch-stddev
    groups, augmentations and latents included) make the same updates as one process."""
    states = {}
    script = tmp_path / "run.py"
    script.write_text(RUN)
    for procs in (1, 2):
        out = tmp_path / f"run{procs}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_port", str(29700 + procs + os.getpid() % 1000), str(script), "--objective", "adversarial",
               "--preset", "tiny", "--data", digits, "--out", str(out), "--device", "cpu", "--no-progress",
               "--max-steps", "5", "--checkpoint-every", "5", "--r1-every", "4"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        states[procs] = torch.load(out / "checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    for part in ("model", "D"):
        for name, value in states[1][part].items():
            torch.testing.assert_close(states[2][part][name], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{name}")


def test_downsampling_pads_with_zeros_as_the_reference():
    """StyleGAN2's conv2d_resample at down = 2, worked by hand on an image of ones: the 3x3 conv
    sees the [1,3,3,1]/8 low-pass of a map padded with 2 zeros, whose first rows are 4/8, 7/8,
    then 1; the 1x1 skip takes every second pixel of the low-pass with 1 zero of padding (7/8)."""
    from train.discriminator import EqualConv2d

    ones = torch.ones(1, 1, 32, 32)
    conv = EqualConv2d(1, 1, 3, bias=False, down=2)
    skip = EqualConv2d(1, 1, 1, bias=False, down=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)      # gain 1/3: the output is 3 x the mean of the 3x3 window
        skip.weight.fill_(1.0)      # gain 1
        y, s = conv(ones), skip(ones)
    assert y.shape == s.shape == (1, 1, 16, 16)
    corner = (4 / 8 + 7 / 8 + 1) ** 2 / 3
    assert y[0, 0, 0, 0].item() == pytest.approx(corner) and y[0, 0, 5, 5].item() == pytest.approx(3.0)
    assert y[0, 0, 0, 5].item() == pytest.approx((4 / 8 + 7 / 8 + 1) * 3 / 3)
    assert s[0, 0, 0, 0].item() == pytest.approx((7 / 8) ** 2) and s[0, 0, 7, 7].item() == pytest.approx(1.0)
    assert s[0, 0, 15, 15].item() == pytest.approx((7 / 8) ** 2)   # symmetric: the last window ends in the padding


@pytest.mark.training
def test_the_discriminator_sees_fresh_fakes_of_the_updated_generator(digits, tmp_path, monkeypatch):
    """As StyleGAN2's Dmain phase: new latents, and the generator after this step's update."""
    seen = {}
    real_judge = Adversarial.judge

    def spy(self, run, images, phase, D=None, amp=True):
        seen[phase] = (images.detach().clone(), {k: v.detach().clone() for k, v in run.model.state_dict().items()})
        return real_judge(self, run, images, phase, D, amp)

    monkeypatch.setattr(Adversarial, "judge", spy)
    run = trainer.setup(gan_config(digits, tmp_path, max_steps=1))
    objective = run.objective
    real = adversarial.as_float(run.data[:run.per_rank_batch])
    objective.generator_step(run, 1.0)
    objective.discriminator_step(run, real, 1.0)
    g_images, g_weights = seen["generator"]
    d_images, d_weights = seen["fake"]
    assert any(not torch.equal(g_weights[k], d_weights[k]) for k in g_weights)   # G was updated in between
    assert not torch.allclose(g_images, d_images)
    with torch.no_grad():
        assert torch.equal(d_images, objective.fake_images(run, "discriminator"))  # made by the updated G


def test_r1_gamma_defaults_to_the_reference_heuristic():
    """StyleGAN2-ADA's 0.0002 x resolution^2 / batch: 0.0128 for the cpu preset (32 px, batch 16)."""
    cfg = parse_args(["--objective", "adversarial", "--preset", "cpu", "--data", "x"])
    assert cfg.r1_gamma == -1 and adversarial.r1_gamma(cfg, 32) == pytest.approx(0.0128)
    gpu = parse_args(["--objective", "adversarial", "--preset", "gpu", "--data", "x"])
    assert adversarial.r1_gamma(gpu, 64) == pytest.approx(0.0002 * 64 ** 2 / 64)
    assert adversarial.r1_gamma(parse_args(["--objective", "adversarial", "--data", "x", "--r1-gamma", "0.5"]), 32) == 0.5


@pytest.mark.training
def test_path_length_regularisation_is_lazy_weighted_and_resumes_exactly(digits, tmp_path, monkeypatch):
    """StyleGAN2's: every pl_every steps, pl_weight x (|J_w^T y| - running mean)^2 x pl_every,
    with G's Adam lr x 4/5 and beta2 0.99^(4/5); pl_mean is training state, and so is the RNG
    the per-pixel noise draws from (resume is exact with both on)."""
    calls = []
    real_step = Adversarial.optimize

    def spy(self, run, opt, module, loss, what, lr_factor):
        if what == "path length":
            calls.append((run.step, float(self.pl_mean)))
        return real_step(self, run, opt, module, loss, what, lr_factor)

    monkeypatch.setattr(Adversarial, "optimize", spy)
    changes = dict(pl_weight=2.0, pl_every=4, r1_every=4, checkpoint_every=6, decoder={"noise": True})
    trainer.train(gan_config(digits, tmp_path / "straight", max_steps=12, **changes))
    assert [s for s, _ in calls] == [0, 4, 8] and all(m > 0 for _, m in calls)
    # From 0, the running mean moves 1 % of the way to each batch's mean length: it grows.
    assert calls[0][1] < calls[1][1] < calls[2][1]
    run = trainer.setup(gan_config(digits, tmp_path / "opt", max_steps=1, **changes))
    group = run.objective.opt_G.param_groups[1]
    assert float(group["lr"]) == pytest.approx(run.cfg.lr * 4 / 5) and group["betas"] == (0.0, pytest.approx(0.99 ** 0.8))
    trainer.train(gan_config(digits, tmp_path / "split", max_steps=6, **changes))
    trainer.train(gan_config(digits, tmp_path / "split", max_steps=12, resume=True, **changes))
    a = torch.load(tmp_path / "straight/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "split/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    assert a["pl_mean"] == b["pl_mean"] > 0
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name

