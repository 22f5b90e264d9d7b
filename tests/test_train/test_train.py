import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rtm_core import Generator, load_checkpoint, read_meta, tiny
from rtm_core.config import stylegan2_mapping
from train.config import PRESETS, TrainConfig, command_line, parse_args
from train.data import load_prepared
from train.losses import ImageLoss
from train.init_from import TRAIN_STATE_FILE
from train.trainer import learning_rate, train
from train.run import TrainingDiverged

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(data: str, out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{**PRESETS["tiny"], "data": data, "out": str(out), "progress": False,
                           "threads": torch.get_num_threads(), **changes})   # fixed for the session (conftest.py)


def losses(out: Path) -> list[float]:
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return [l["loss"] for l in lines if "loss" in l]


@pytest.mark.training
def test_tiny_run_learns_and_leaves_a_loadable_checkpoint(digits, tmp_path):
    folder = train(tiny_config(digits, tmp_path / "run", max_steps=40))
    values = losses(tmp_path / "run")
    assert len(values) == 8 and all(v == v and abs(v) < float("inf") for v in values)
    # The loss falls: by a fifth at least (measured: ~30 %); a run that does not learn stays near 1.0x.
    assert sum(values[-3:]) / 3 < 0.8 * sum(values[:2]) / 2
    g, meta = load_checkpoint(folder)
    assert meta["step"] == 40 and meta["images_seen"] == 40 * 16
    assert g.config.decoder.img_resolution == 16
    assert (tmp_path / "run" / "samples" / "step_0000040.png").is_file()
    events = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e.get("event") == "reselect"] == [0]


@pytest.mark.training
@pytest.mark.parametrize("mapper,decoder", [("mlp", "stylegan2"), ("rtm", "imle")])
def test_other_arms_train(digits, tmp_path, mapper, decoder):
    folder = train(tiny_config(digits, tmp_path, mapper={"kind": mapper}, decoder={"kind": decoder}, max_steps=10))
    assert load_checkpoint(folder)[0].config.mapper.kind == mapper


@pytest.mark.slow
@pytest.mark.training
def test_resume_ends_with_the_same_weights(digits, tmp_path):
    # 1 epoch = 112.3 steps and re-selection every 2 epochs of images (225 steps): cross both boundaries.
    settings = dict(max_steps=260, checkpoint_every=100, log_every=50)
    train(tiny_config(digits, tmp_path / "straight", **settings))
    train(tiny_config(digits, tmp_path / "split", **{**settings, "max_steps": 150}))
    cpu_first_part = read_meta(tmp_path / "split/checkpoint")["cpu_time_s"]
    train(tiny_config(digits, tmp_path / "split", **settings, resume=True))
    a = torch.load(tmp_path / "straight/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "split/checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    assert a["step"] == b["step"] == 260
    # the budget in CPU seconds goes on from where the first part stopped
    assert 0 < cpu_first_part < b["cpu_time_s"] == read_meta(tmp_path / "split/checkpoint")["cpu_time_s"]
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert torch.equal(a["latents"], b["latents"])


@pytest.mark.training
def test_resume_needs_a_checkpoint_and_the_same_model(digits, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(tiny_config(digits, tmp_path, resume=True))
    train(tiny_config(digits, tmp_path, max_steps=5))
    with pytest.raises(ValueError, match="different model configuration"):
        train(tiny_config(digits, tmp_path, max_steps=10, resume=True, mapper={"kind": "mlp"}))


@pytest.mark.training
def test_init_from_starts_from_the_parent_weights_with_a_fresh_optimizer_and_records_the_lineage(few_digits, tmp_path):
    digits = few_digits
    parent = train(tiny_config(digits, tmp_path / "stage1", max_steps=20))
    parent_g, parent_meta = load_checkpoint(parent)
    child = tiny_config(digits, tmp_path / "stage2", max_steps=10, seed=1, init_from=str(parent))
    from train.trainer import setup
    run = setup(child)
    # model <- the parent's raw weights (its train state), EMA <- its EMA; nothing random.
    raw = torch.load(Path(parent) / TRAIN_STATE_FILE, weights_only=True)["model"]
    assert all(torch.equal(run.model.state_dict()[k], raw[k]) for k in raw)
    assert all(torch.equal(run.ema.state_dict()[k], v) for k, v in parent_g.state_dict().items())
    assert run.objective.opt.state == {} and run.step == 0 and run.objective.latents is None
    run.log_file.close()
    shutil.rmtree(child.out)             # what setup began: a new run refuses a folder that holds one
    folder = train(child)
    g, meta = load_checkpoint(folder)
    assert meta["step"] == 10 and meta["init_from"] == str(parent) and meta["stages"] == 2
    assert meta["lineage"] == [{"checkpoint": str(parent), "step": 20, "images_seen": 320,
                                "wall_time_s": parent_meta["wall_time_s"], "cpu_time_s": parent_meta["cpu_time_s"],
                                "threads": torch.get_num_threads(),
                                "world_size": 1, "data": digits}]
    assert meta["total_steps"] == 30 and meta["total_images_seen"] == 30 * 16
    # The weights moved on from the parent's (weight_change is measured from them).
    assert 0 < meta["weight_change"]["mapping"] < 1
    # A third stage from a shipped-style folder (no train state: the EMA weights are the model's) keeps the chain.
    shipped = tmp_path / "shipped"
    shutil.copytree(folder, shipped, ignore=shutil.ignore_patterns(TRAIN_STATE_FILE))
    third = train(tiny_config(digits, tmp_path / "stage3", max_steps=5, init_from=str(shipped)))
    meta3 = read_meta(third)
    assert [s["checkpoint"] for s in meta3["lineage"]] == [str(parent), str(shipped)]
    assert meta3["total_steps"] == 35 and meta3["stages"] == 3


@pytest.mark.training
def test_init_from_refuses_other_data_and_other_shapes(few_digits, tmp_path):
    digits = few_digits
    parent = train(tiny_config(digits, tmp_path / "p", max_steps=5))
    from train.data import prepare_digits
    other = prepare_digits(8, tmp_path / "digits-8", limit=120)
    with pytest.raises(ValueError, match=r"16x16 images.*8x8.*--resolution 16"):
        train(tiny_config(str(other), tmp_path / "c1", max_steps=5, init_from=str(parent)))
    with pytest.raises(ValueError, match=r"mapper.token_dim.*drop those"):
        train(tiny_config(digits, tmp_path / "c2", max_steps=5, init_from=str(parent), mapper={"token_dim": 16}))
    # Fields that keep the shapes may change: here the number of outer steps.
    folder = train(tiny_config(digits, tmp_path / "c3", max_steps=5, init_from=str(parent), mapper={"num_steps": 5}))
    assert load_checkpoint(folder)[0].num_steps == 5
    with pytest.raises(Exception, match="does not exist"):
        train(tiny_config(digits, tmp_path / "c4", max_steps=5, init_from=str(tmp_path / "nowhere")))


@pytest.mark.training
def test_eval_every_logs_precision_recall_and_seed_diversity(few_digits, tmp_path, pixel_features):
    train(tiny_config(few_digits, tmp_path, max_steps=12, eval_every=10, eval_samples=100))
    events = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e.get("event") == "eval"]
    assert [e["step"] for e in evals] == [10, 12]          # every 10 steps and at the last one
    for e in evals:
        assert 0 <= e["precision"] <= 1 and 0 <= e["recall"] <= 1 and 0 <= e["coverage"] <= 1
        assert 1 <= e["distinct_nearest"] <= e["diversity_seeds"] == 100 and e["precision_sd"] >= 0


@pytest.mark.training
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(few_digits, tmp_path, monkeypatch):
    """Also the selection round of step 15 (rounds every 15 steps on 120 images), read only at
    the next log step, where the divergence is found: its line is written before the run stops."""
    real_forward, calls = ImageLoss.forward, {"n": 0}

    def poisoned(self, fake, real, *rest):
        calls["n"] += 1
        out = real_forward(self, fake, real, *rest)
        return {**out, "loss": out["loss"] * float("nan")} if calls["n"] > 15 else out

    monkeypatch.setattr(ImageLoss, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="diverged at step 15.*--resume"):
        train(tiny_config(few_digits, tmp_path, max_steps=30, checkpoint_every=10))
    g, meta = load_checkpoint(tmp_path / "checkpoint")
    assert meta["step"] == 10
    assert all(torch.isfinite(p).all() for p in g.parameters())
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "reselect"] == [0, 15]


@pytest.mark.training
@pytest.mark.parametrize("objective", ["imle", "adversarial"])
def test_a_step_that_is_not_finite_moves_no_weight_and_no_moment(digits, tmp_path, monkeypatch, objective):
    """The skip is the optimizer's own (fused Adam's found_inf): weights, moments and step counts stay."""
    from train import trainer
    from train.config import ADVERSARIAL_PRESETS

    preset = PRESETS["tiny"] if objective == "imle" else ADVERSARIAL_PRESETS["tiny"]
    run = trainer.setup(TrainConfig(**{**preset, "data": digits, "out": str(tmp_path), "progress": False}))
    if objective == "imle":
        run.objective.select_latents(run)
    rows = torch.arange(run.per_rank_batch)
    step = trainer.training_step(run)                           # the step as the loop takes it, counted on the device
    step(rows, 1.0, 0.9)                                        # a finite step: the moments are set
    saved = lambda: ({k: v.clone() for k, v in run.model.state_dict().items()},
                     [{i: {k: v.clone() for k, v in s.items()} for i, s in opt.state_dict()["state"].items()}
                      for opt in run.objective.optimizers])
    weights, moments = saved()
    real_backward = torch.Tensor.backward
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: real_backward(self * float("nan"), *a, **k))
    step(rows, 1.0, 0.9)
    monkeypatch.undo()
    after_weights, after_moments = saved()
    assert all(torch.equal(v, weights[k]) for k, v in after_weights.items())
    assert all(torch.equal(a[i][k], m[i][k]) for a, m in zip(after_moments, moments) for i in m for k in m[i])
    assert int(run.first_skipped) == 1
    run.log_file.close()


@pytest.mark.training
def test_the_real_images_perceptual_features_are_computed_once_and_are_what_a_step_would_compute(digits, tmp_path):
    from train import trainer

    run = trainer.setup(tiny_config(digits, tmp_path, loss_perceptual=1.0, perceptual_size=32))
    perceptual, rows = run.objective.forward_loss.image_loss.perceptual, torch.tensor([3, 0, 17, 5])
    cached = [f[rows] for f in run.objective.real_features]
    with torch.no_grad():
        fresh = perceptual.features(run.data[rows].float() / 127.5 - 1.0)
    for c, f in zip(cached, fresh):
        torch.testing.assert_close(c, f, rtol=1e-5, atol=1e-6)
    run.log_file.close()


KILL_DURING_SAVE = """
import os, signal
import rtm_core.atomic as atomic
from rtm_core.checkpoint import META_FILE
from train.trainer import train
from train.config import PRESETS, TrainConfig
point, first_save = {point!r}, os.path.join({out!r}, "checkpoint", META_FILE)
real_write, real_exchange = atomic._write_durably, atomic._exchange
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def write(path, data):
    if point == "writing" and os.path.exists(first_save) and path.name == META_FILE:
        die()                                   # the second save: some new files written, others not
    real_write(path, data)
def exchange(a, b):
    if point == "before-swap":
        die()                                   # every new file written and synced, nothing swapped
    done = real_exchange(a, b)
    if point == "after-swap":
        die()                                   # swapped; the old contents not yet removed
    return done
atomic._write_durably, atomic._exchange = write, exchange
train(TrainConfig(**{{**PRESETS["tiny"], "data": {data!r}, "out": {out!r}, "progress": False, "max_steps": 20}}))
"""


# The tiny preset saves at steps 10 and 20. A kill at a point of the second save (step 20) must
# leave the whole step-10 checkpoint, or -- once the folders are swapped -- the whole step-20 one.
@pytest.mark.training
@pytest.mark.parametrize("point,expected_step", [("writing", 10), ("before-swap", 10), ("after-swap", 20)])
def test_sigkill_during_a_checkpoint_write_leaves_a_whole_checkpoint(digits, tmp_path, point, expected_step):
    script = KILL_DURING_SAVE.format(point=point, data=digits, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    g, meta = load_checkpoint(tmp_path / "checkpoint")
    assert meta["step"] == expected_step
    state = torch.load(tmp_path / "checkpoint" / TRAIN_STATE_FILE, weights_only=True)
    assert state["step"] == expected_step  # the weights and the train state are swapped together
    train(tiny_config(digits, tmp_path, max_steps=30, resume=True))  # and training goes on from it
    assert read_meta(tmp_path / "checkpoint")["step"] == 30
    assert not list(tmp_path.glob(".checkpoint.*"))  # the killed save's leftovers were cleared by the next


def test_the_recorded_command_line_makes_the_same_settings():
    cfg = parse_args(["--preset", "cpu", "--data", "d", "--init-from", "x", "--mapper.num-steps", "4", "--no-amp"])
    assert parse_args(command_line(cfg)) == cfg
    assert command_line(TrainConfig(data="d")) == ["--data", "d"]


def test_cli_flags_come_from_the_dataclass():
    cfg = parse_args(["--preset", "tiny", "--data", "d", "--max-steps", "7", "--mapper.kind", "mlp", "--no-amp"])
    assert (cfg.model, cfg.max_steps, cfg.mapper, cfg.amp, cfg.batch_size) == ("tiny", 7, {"kind": "mlp"}, False, 16)
    with pytest.raises(SystemExit):
        parse_args(["--batch-size", "-1"])   # 0 is "from the data" (train/recipe.py)
    with pytest.raises(ValueError, match="lr=-1"):
        TrainConfig(lr=-1)


@pytest.mark.parametrize("argv", [["--mapper.num-step", "3"], ["--max-step", "3"], ["--pre", "cpu"], ["--objective", "imle", "--obj", "imle"]])
def test_an_abbreviated_flag_is_an_error_not_another_flag(argv, capsys):
    """argparse would take --mapper.num-step as --mapper.num-steps, silently."""
    with pytest.raises(SystemExit):
        parse_args(["--preset", "tiny", "--data", "d", *argv])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_mapper_and_decoder_flags_come_from_rtm_core():
    cfg = parse_args(["--preset", "cpu", "--data", "d", "--mapper.num-steps", "1", "--mapper.token-dim", "64",
                      "--mapper.mlp-gain", "sqrt2", "--decoder.noise", "--decoder.channel-max", "64"])
    assert cfg.mapper == {"num_steps": 1, "token_dim": 64, "mlp_gain": 2 ** 0.5}
    assert cfg.decoder == {"channel_base": 1024, "noise": True, "channel_max": 64}   # the preset's, then the flags
    model = cfg.model_config(32, 3)
    assert (model.mapper.num_steps, model.mapper.token_dim, model.decoder.channel_base) == (1, 64, 1024)
    assert (model.decoder.img_resolution, model.decoder.channel_max) == (32, 64)


@pytest.mark.parametrize("changes,message", [
    (dict(mapper={"num_stepz": 2}), r"unknown mapper field\(s\) \['num_stepz'\]"),
    (dict(decoder={"img_resolution": 64}), "come from the data"),
    (dict(mapper={"num_steps": 0}), "MapperConfig.num_steps"),
    (dict(mapper="mlp"), "must be a dict"),
    (dict(loss_perceptual=0.0, loss_pixel=0.0), "nothing to train on"),
    (dict(lr_schedule="linear"), "lr_schedule='linear'"),
])
def test_bad_model_settings_are_refused_before_training(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--mapper.kind", "transformer"])


# Every arm must be seen to learn. Threshold: 1 % relative change of a part's weights in 30
# tiny steps at the presets' lr balance (decoder at 4x). fp16 storage alone moves weights
# ~0.03 %. Measured: every arm moves 2.9-5.3 %; StyleGAN2's lr x 0.01 mapper, the baseline
# that never trained, moves 0.013 % (the last test), so the check separates them by 3x and 77x.
ARMS = {"rtm": {}, "rtm-h1": {"num_steps": 1}, "mlp": {"kind": "mlp"}}
LEARNING = dict(lr=1e-3, synthesis_lr_scale=4.0)


@pytest.mark.training
@pytest.mark.parametrize("arm", sorted(ARMS))
def test_every_arm_moves_its_mapper_and_decoder_weights(digits, tmp_path, arm):
    folder = train(tiny_config(digits, tmp_path, mapper=ARMS[arm], **LEARNING))
    change = read_meta(folder)["weight_change"]
    assert change["mapping"] > 0.01 and change["synthesis"] > 0.01, change
    logged = [json.loads(l)["weight_change"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if '"weight_change"' in l]
    assert logged[-1] == change and logged[0]["mapping"] < change["mapping"]   # logged every interval, growing


@pytest.mark.training
def test_the_weight_change_check_catches_a_mapper_that_does_not_train(digits, tmp_path):
    folder = train(tiny_config(digits, tmp_path, mapper=stylegan2_mapping(), **LEARNING))
    change = read_meta(folder)["weight_change"]
    assert change["mapping"] < 0.01 < change["synthesis"], change


def test_cli_reports_a_missing_dataset(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.train", "--preset", "tiny", "--data", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode != 0 and "not a prepared dataset" in proc.stderr


DIST_SELECT = """
import torch
from rtm_core import Generator, tiny
from train import distributed
from train.imle import RandomProjection, reselect
info = distributed.setup("cpu")
torch.manual_seed(0)
g = Generator(tiny()).eval()
project = RandomProjection(3 * 16 * 16, 32, seed=0)
data = project(torch.rand(300, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)
# force_factor 30 -> 9,000 samples in 3 pool blocks, split 2 / 1 across two ranks
sel = reselect(g, data, project, z_dim=16, seed=3, round_=1, force_factor=30, eps=0.05, latent_noise=0.001,
               pool_batch=512, info=info)
if info.is_main:
    torch.save({{"index": sel.index, "latents": sel.latents, "rejected": sel.rejected}}, {out!r})
distributed.cleanup()
"""


@pytest.mark.training
@pytest.mark.slow
def test_two_process_gloo_selection_equals_one_process(tmp_path):
    results = {}
    for procs in (1, 2):
        out = str(tmp_path / f"sel{procs}.pt")
        script = tmp_path / f"select{procs}.py"
        script.write_text(DIST_SELECT.format(out=out))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_port", str(29500 + procs + os.getpid() % 1000), str(script)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[procs] = torch.load(out, weights_only=True)
    assert torch.equal(results[1]["index"], results[2]["index"])
    assert torch.equal(results[1]["latents"], results[2]["latents"])
    assert results[1]["rejected"] == results[2]["rejected"]
    assert (results[1]["index"] >= 4096).any()  # some winners came from the second rank's block


@pytest.mark.training
def test_rs_imle_loss_logs_both_terms_and_weights_them(digits, tmp_path):
    folder = train(tiny_config(digits, tmp_path, max_steps=6, log_every=3, loss_perceptual=1.0, loss_pixel=0.1))
    logged = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(logged) == 2
    for line in logged:
        assert line["perceptual"] > 0 and line["pixel"] > 0
        assert line["loss"] == pytest.approx(line["perceptual"] + 0.1 * line["pixel"], rel=1e-5)
    assert load_checkpoint(folder)[1]["step"] == 6


# --- the pieces of the loop, one by one ---------------------------------------------------------

def test_learning_rate_warms_up_linearly_then_stays():
    from train.trainer import learning_rate

    cfg = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [round(learning_rate(cfg, s), 8) for s in range(6)] == [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]
    assert learning_rate(TrainConfig(lr=1e-3, warmup_steps=0), 0) == 1e-3


def test_cosine_learning_rate_decays_to_its_final_scale_at_max_steps():
    from train.trainer import learning_rate

    cfg = TrainConfig(lr=1e-3, warmup_steps=4, max_steps=104, lr_schedule="cosine", lr_final_scale=0.1)
    assert [round(learning_rate(cfg, s), 8) for s in range(4)] == [2.5e-4, 5e-4, 7.5e-4, 1e-3]
    assert learning_rate(cfg, 53) == pytest.approx(0.55e-3)           # half way: the mean of 1 and 0.1
    assert learning_rate(cfg, 103) == pytest.approx(1e-4) == learning_rate(cfg, 500)
    rates = [learning_rate(cfg, s) for s in range(3, 104)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_ema_moves_towards_the_model_by_one_minus_decay():
    from train.run import update_ema

    model, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(1.0), ema.weight.fill_(0.0)
    update_ema(ema, model, decay=0.9)
    torch.testing.assert_close(ema.weight, torch.full((2, 2), 0.1))


def test_each_rank_trains_on_its_own_share_of_every_batch_and_every_image_once_an_epoch():
    from train.distributed import DistInfo
    from train.run import BatchOrder

    def order(rank, world, batch, n=10):
        return BatchOrder(0, n, batch, DistInfo(rank=rank, world_size=world, local_rank=rank, device=torch.device("cpu")))

    whole, a, b = order(0, 1, 4), order(0, 2, 4), order(1, 2, 4)
    for step in range(7):   # batches of 4 from epochs of 10: steps 2 and 4 span two epochs
        assert sorted(a(step).tolist() + b(step).tolist()) == sorted(whole(step).tolist())
        assert len(a(step)) == len(b(step)) == 2
    stream = torch.cat([whole(step) for step in range(5)])   # 20 images = two epochs, each image once in each
    assert sorted(stream[:10].tolist()) == sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])         # a new order each epoch
    # the stream is the same whatever the batch: a schedule in images means the same at any batch size
    assert torch.equal(torch.cat([order(0, 1, 5)(step) for step in range(4)]), stream)
    big = order(0, 1, 25)(1)                                 # a batch larger than the dataset spans epochs 2-5
    assert len(big) == 25 and sorted(big[5:15].tolist()) == list(range(10))


def test_schedules_counted_in_images_mean_the_same_at_any_batch_size():
    from train.objectives.rs_imle import resample_interval
    from train.run import ema_decay

    cfgs = {b: parse_args(["--data", "x", "--preset", "cpu", "--batch-size", str(b)]) for b in (16, 64, 256)}
    for b, cfg in cfgs.items():
        assert cfg.warmup_steps == -(-3_200 // b) and cfg.max_steps == -(-24_000 // b)   # rounded up to whole steps
        # the EMA keeps half of its weight on the last 2,200 images, whatever the batch
        assert cfg.ema_decay ** (2_200 / b) == pytest.approx(0.5)
        assert ema_decay(cfg, 10_000) == pytest.approx(cfg.ema_decay)
        assert resample_interval(cfg, 103) * b == pytest.approx(20 * 103, rel=0.05)   # every 20 epochs of images
    assert resample_interval(dataclasses.replace(cfgs[256], resample_min_steps=30), 103) == 30   # the floor
    # a step count on the command line replaces the preset's count in images; both at once is refused
    assert parse_args(["--data", "x", "--preset", "cpu", "--max-steps", "7"]).max_steps == 7
    assert parse_args(["--data", "x", "--preset", "cpu", "--warmup-steps", "7"]).warmup_steps == 7
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--max-steps", "7", "--max-images", "700"])
    with pytest.raises(ValueError, match="max_images"):
        TrainConfig(max_images=-1)


def test_random_streams_are_named_and_do_not_collide():
    from train.imle import stream_seed

    seeds = {stream_seed(0, name, 1, 7) for name in ("pool", "latent-noise", "data-order")}
    assert len(seeds) == 3 and stream_seed(0, "pool", 1, 7) == stream_seed(0, "pool", 1, 7)


@pytest.mark.training
def test_max_minutes_stops_the_run_and_saves_it(digits, tmp_path, monkeypatch):
    import train.trainer as trainer

    clock = iter(range(0, 10_000, 7))           # every reading of the clock is 7 s later
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: float(next(clock)))
    train(tiny_config(digits, tmp_path, max_steps=1000, max_minutes=1.0))
    _, meta = load_checkpoint(tmp_path / "checkpoint")
    assert 1 <= meta["step"] < 20          # stopped after about a minute of (fake) time, and saved there


@pytest.mark.training
def test_no_progress_bar_still_prints_one_status_line_per_interval(digits, tmp_path, capsys):
    train(tiny_config(digits, tmp_path, max_steps=10, log_every=5))
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("step ") and "| loss " in l]
    assert len(lines) == 2 and lines[0].startswith("step 5/10 | loss ") and lines[1].endswith("ETA 0.0 min")


@pytest.mark.training
def test_on_a_terminal_the_bar_shows_the_same_eta(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(tiny_config(digits, tmp_path, max_steps=10, log_every=5, progress=True))
    bars = [part for part in capsys.readouterr().err.split("\r") if part.startswith("train:")]
    assert bars and re.search(r"10/10 \[[\d:]+, [^,]+, ETA 0\.0 min\]", bars[-1])


@pytest.mark.training
def test_a_log_file_hears_of_the_run_early_and_gets_an_eta(digits, tmp_path, monkeypatch, capsys):
    import train.trainer as trainer

    clock = iter(range(0, 100_000, 3))          # every reading of the clock is 3 s later
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: float(next(clock)))
    train(tiny_config(digits, tmp_path, max_steps=40, log_every=20, max_minutes=0))
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("step ")]
    first = re.fullmatch(r"step (\d+)/40 \| ETA ([\d.]+) min", lines[0])
    assert first and int(first.group(1)) < 20      # before the first interval's status line
    assert float(first.group(2)) > 0
    assert re.search(r"^step 20/40 \| loss .* \| ETA [\d.]+ min$", lines[1]) and lines[2].endswith("ETA 0.0 min")
    # With --max-minutes shorter than the steps left, the ETA is the time limit's.
    train(tiny_config(digits, tmp_path / "capped", max_steps=10_000, log_every=5, max_minutes=1.0))
    assert "(--max-minutes)" in [l for l in capsys.readouterr().err.splitlines() if "| loss " in l][0]


def test_the_quick_preset_is_the_cpu_model_annealed_in_its_short_budget():
    quick, cpu = TrainConfig(**PRESETS["quick"]), TrainConfig(**PRESETS["cpu"])
    assert quick.model_config(32, 3) == cpu.model_config(32, 3)        # the app's model, only trained shorter
    assert quick.lr_schedule == "cosine" and quick.max_steps * quick.batch_size < cpu.max_steps * cpu.batch_size
    assert learning_rate(quick, quick.max_steps - 1) == pytest.approx(quick.lr * quick.lr_final_scale, rel=1e-3)


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_the_presets_make_valid_models(preset):
    cfg = TrainConfig(**PRESETS[preset])
    model = cfg.model_config(32 if preset == "cpu" else 64, 3)
    assert model.mapper.kind == "rtm" and model.mapper.num_steps == 8
    assert model.decoder.img_resolution == (32 if preset == "cpu" else 64)
    assert cfg.loss_perceptual == cfg.loss_pixel == 1.0 and cfg.eps_nn_fraction == 0.5


DDP_STEP = "import sys\nfrom train.train import main\nmain(sys.argv[1:])\n"


@pytest.mark.training
@pytest.mark.slow
def test_two_process_gloo_training_equals_one_process(digits, tmp_path):
    """DDP: two ranks on halves of the same global batch make the same update as one process."""
    weights = {}
    for procs in (1, 2):
        out = tmp_path / f"run{procs}"
        script = tmp_path / "run.py"
        script.write_text(DDP_STEP)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_port", str(29600 + procs + os.getpid() % 1000), str(script),
               "--preset", "tiny", "--data", digits, "--out", str(out), "--device", "cpu", "--no-progress",
               "--max-steps", "3", "--checkpoint-every", "3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights[procs] = torch.load(out / "checkpoint" / TRAIN_STATE_FILE, weights_only=True)["model"]
    for name, value in weights[1].items():
        torch.testing.assert_close(weights[2][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert read_meta(tmp_path / "run1" / "checkpoint")["weight_change"]["mapping"] > 3e-4   # and it did train (3 steps in warmup)


SKEWED_CLOCK = """
import os, sys, time
if os.environ.get("RANK") == "1":          # this rank's clock runs 100,000 times fast: its --max-minutes passes at once
    real = time.perf_counter
    time.perf_counter = lambda: real() * 100_000.0
from train.train import main
main(sys.argv[1:])
"""


@pytest.mark.training
@pytest.mark.slow
def test_ranks_with_skewed_clocks_stop_and_save_together(digits, tmp_path):
    """--max-minutes is decided by every rank together: a rank whose clock says stop does not leave
    the other waiting in its next all-reduce (the run would hang until torchrun's timeout)."""
    script = tmp_path / "run.py"
    script.write_text(SKEWED_CLOCK)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29650 + os.getpid() % 1000), str(script),
           "--preset", "tiny", "--data", digits, "--out", str(out), "--device", "cpu", "--no-progress",
           "--max-steps", "1000", "--max-minutes", "30", "--log-every", "5", "--checkpoint-every", "1000"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_meta(out / "checkpoint")["step"] == 5          # both stopped at the first log step, and saved there
    assert "stopped by --max-minutes 30 at step 5" in proc.stderr


EXPERIMENT_ARMS = {"rtm": {}, "recursion-off": {"mapper": {"num_steps": 1}}, "mlp": {"mapper": {"kind": "mlp"}},
        "rs-imle": {"mapper": {"kind": "mlp", "mlp_init": "torch"}, "decoder": {"kind": "imle"}, "rejection": "knn",
                    "pool_multiple": 1024, "adam_beta2": 0.9, "weight_decay": 0.01, "grad_clip": 0.0}}


@pytest.mark.training
@pytest.mark.parametrize("arm", sorted(EXPERIMENT_ARMS))
def test_no_arm_collapses_in_a_short_run(arm, few_digits, tmp_path):
    """Every arm of the experiment, tiny, 60 steps on 120 digits: the seed diversity logged at
    every interval must show seeds 0-99 landing on at least 6 different training images.

    Why 6: a collapsed arm sends every seed to one image (1, checked below); measured on these
    runs the arms reach 8-22 (RTM 20, H = 1 15, MLP 16, RS-IMLE-like 8; the ceiling for 100
    uniform draws from 120 images is 69), so 6 fails only an arm that collapsed to a few modes."""
    out = tmp_path / arm
    train(tiny_config(few_digits, out, max_steps=60, log_every=20, **EXPERIMENT_ARMS[arm]))
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    first = [l for l in lines if l.get("event") == "seed_diversity"]
    probes = [l["seed_diversity"] for l in lines if "seed_diversity" in l]
    assert [l["step"] for l in first] == [0] and len(probes) == 3      # at the start, then at 20, 40, 60
    last = probes[-1]
    assert last["model"]["distinct_nearest"] >= 6 and last["ema"]["distinct_nearest"] >= 6, last
    assert 0 < last["model"]["w_spread"] <= 1.0001
    meta = read_meta(out / "checkpoint")["seed_diversity"]
    assert meta["first"]["step"] == 0 and meta["last"]["step"] == 60


def test_the_diversity_probe_sees_a_collapsed_generator(few_digits):
    from train.run import DiversityProbe

    g = Generator(tiny("mlp"))
    with torch.no_grad():
        for p in g.mapping.parameters():
            p.zero_()                                        # w = 0 for every seed: one image
    images = torch.from_numpy(load_prepared(few_digits).images).permute(0, 3, 1, 2)
    probe = DiversityProbe(images, g.z_dim)(g)
    assert probe == {"w_spread": 0.0, "distinct_nearest": 1}


def test_help_shows_the_chosen_presets_values_as_defaults(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--preset", "cpu", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 0.0005, from --preset cpu)" in text and "(default 24000, from --preset cpu)" in text
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "(default 0.0002)" in " ".join(capsys.readouterr().out.split())


def test_ema_rampup_follows_stylegan2_ada():
    """Half-life in images = min(that of ema_decay, ema_rampup x images seen): at the start the
    EMA follows the model, later the configured decay holds."""
    from train.run import ema_decay

    cfg = TrainConfig(batch_size=16, ema_decay=0.999, ema_rampup=0.05)
    assert ema_decay(cfg, 0) < 1e-5                                   # 16 images seen: half-life 0.8 images
    assert ema_decay(cfg, 99) == pytest.approx(0.5 ** (16 / 80))      # 1,600 images: half-life 80
    assert ema_decay(cfg, 100_000) == pytest.approx(0.999)            # the cap: 0.999's half-life (11,082 images)
    assert ema_decay(cfg, 0, images_before=10_000_000) == pytest.approx(0.999)   # a later stage: no ramp again
    assert ema_decay(TrainConfig(ema_decay=0.999), 0) == 0.999         # off by default


@pytest.mark.training
def test_with_the_rampup_a_short_run_s_ema_is_not_its_random_init(digits, tmp_path):
    import copy

    from rtm_core import Generator, tiny
    from train.run import relative_change

    torch.manual_seed(0)
    init = Generator(tiny())
    moved = {}
    for rampup in (0.0, 0.05):
        folder = train(tiny_config(digits, tmp_path / f"r{rampup}", max_steps=20, ema_decay=0.999, ema_rampup=rampup))
        ema = load_checkpoint(folder)[0]
        raw = torch.load(folder / TRAIN_STATE_FILE, weights_only=True)["model"]
        model = copy.deepcopy(init)
        model.load_state_dict(raw)
        moved[rampup] = relative_change((e, m) for e, m in zip(ema.parameters(), model.parameters()))
    assert moved[0.05] < 0.1 * moved[0.0]       # the ramped EMA sits near the trained weights


def test_the_quick_preset_fine_tunes_the_shipped_model_that_fits_and_starts_from_scratch_elsewhere():
    from train.init_from import parent_of

    quick = parse_args(["--preset", "quick", "--data", "d"])
    assert quick.init_from == "shipped"
    parent, line = parent_of(quick, 32, 3, 100)                     # 32x32 images: the 32x32 default
    assert parent.lineage[-1]["checkpoint"].endswith("noto-faces-rtm") and parent.config.decoder.img_resolution == 32
    assert line.startswith("starting from the shipped noto-faces-rtm (") and "fine-tuning it on your 100 images" in line
    parent, line = parent_of(quick, 64, 3, 100)                     # 64x64 images: the 64x64 model that ships
    assert parent.lineage[-1]["checkpoint"].endswith("noto-faces-rtm-64") and parent.config.decoder.img_resolution == 64
    assert line.startswith("starting from the shipped noto-faces-rtm-64 (") and "43,967 steps" in line
    parent, line = parent_of(quick, 16, 1, 100)                     # no shipped model fits: from scratch, and why
    assert parent is None and line.startswith("from scratch") and "no shipped model fits 16x16" in line
    assert "32x32" in line and "64x64" in line
    scratch = parse_args(["--preset", "quick", "--data", "d", "--init-from", "none"])   # one flag away
    assert parent_of(scratch, 32, 3, 100) == (None, "from scratch (a random initialisation, seed 0), as --init-from none "
                                                    "asks; training on 100 images")
    parent, line = parent_of(parse_args(["--preset", "cpu", "--data", "d"]), 32, 3, 100)
    assert parent is None and "no --init-from was given" in line


@pytest.mark.training
def test_the_log_says_where_a_run_starts_in_both_cases(few_digits, tmp_path, capsys):
    train(tiny_config(few_digits, tmp_path / "scratch", max_steps=2))
    assert "from scratch (a random initialisation, seed 0), since no --init-from was given" in capsys.readouterr().err
    parent = tmp_path / "scratch" / "checkpoint"
    train(tiny_config(few_digits, tmp_path / "tuned", max_steps=2, init_from=str(parent)))
    assert f"starting from {parent}: 16x16 images, 2 steps of training on {few_digits}, training on 120 images" \
        in capsys.readouterr().err
    train(tiny_config(few_digits, tmp_path / "tuned", max_steps=4, init_from=str(parent), resume=True))
    err = capsys.readouterr().err
    assert f"continuing the run in {tmp_path / 'tuned'} from its last checkpoint, at step 2 of 4" in err
    assert "starting from" not in err and "from scratch" not in err


@pytest.mark.training
def test_the_gpu_preset_leaves_batch_rate_pool_and_perceptual_size_to_the_data(few_digits, tmp_path):
    from train.recipe import from_data

    gpu = parse_args(["--data", "x", "--preset", "gpu"])
    faces, lines = from_data(gpu, 103, 32, "cuda")
    assert (faces.batch_size, faces.lr, faces.force_factor, faces.perceptual_size) == (64, 2e-3, 20, 32)
    assert faces.warmup_steps == 50 and faces.max_steps == 50_000   # its schedules in images, at the batch decided
    assert "batch 64" in lines[0] and "lr 0.002" in lines[0]
    large, _ = from_data(gpu, 100_000, 256, "cuda", world_size=3)
    assert large.batch_size == 258 and large.force_factor == 2 and large.perceptual_size == 128   # 256 shared by 3
    assert large.lr == pytest.approx(1e-3 * (258 / 16) ** 0.5)   # the square-root rule through the measured best rates
    assert (from_data(gpu, 103, 32, "cpu")[0].batch_size, from_data(gpu, 103, 32, "cpu")[0].lr) == (16, 1e-3)
    given = dataclasses.replace(gpu, batch_size=32, lr=3e-4)       # a setting given on the command line stays
    assert (from_data(given, 103, 64, "cuda")[0].batch_size, from_data(given, 103, 64, "cuda")[0].lr) == (32, 3e-4)
    assert from_data(TrainConfig(), 103, 32, "cuda") == (TrainConfig(), [])
    # a run records the decided values, not the zeros
    train(tiny_config(few_digits, tmp_path, batch_size=0, lr=0, force_factor=0, max_steps=2, checkpoint_every=2))
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert (saved["batch_size"], saved["lr"], saved["force_factor"]) == (16, 1e-3, 20)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.training
@pytest.mark.parametrize("objective", ["imle", "adversarial"])
def test_a_new_run_into_a_folder_that_holds_a_run_is_refused_and_loses_nothing(few_digits, tmp_path, objective):
    from train.config import ADVERSARIAL_PRESETS
    from train.run import RunFolderTaken

    preset = PRESETS["tiny"] if objective == "imle" else ADVERSARIAL_PRESETS["tiny"]
    config = lambda **c: TrainConfig(**{**preset, "data": few_digits, "progress": False, "max_steps": 2, **c})
    out = tmp_path / "mine"
    train(config(out=str(out)))
    before = snapshot(out)
    with pytest.raises(RunFolderTaken, match=r"already holds a run \(checkpoint/, metrics.jsonl, .*--resume.*"
                                             r"--out .*mine-2.*--overwrite.*mine-previous-1"):
        train(config(out=str(out), max_steps=4, seed=1))
    assert snapshot(out) == before                       # byte-identical: nothing was written
    train(config(out=str(out), max_steps=4, seed=1, overwrite=True))   # asked for: the old run moves aside whole
    assert snapshot(tmp_path / "mine-previous-1") == before
    assert read_meta(out / "checkpoint")["step"] == 4 and json.loads((out / "train_config.json").read_text())["seed"] == 1
    assert not (out / "metrics.jsonl").read_bytes().startswith(before["metrics.jsonl"] or b"-")   # a new log, not appended
    train(config(out=str(out), max_steps=6, resume=True))          # --resume continues the run that is there
    assert read_meta(out / "checkpoint")["step"] == 6


@pytest.mark.training
def test_the_command_line_refuses_a_taken_folder_and_an_empty_one_is_fine(few_digits, tmp_path, capsys):
    from train.train import main

    (tmp_path / "empty").mkdir()
    main(["--preset", "tiny", "--data", few_digits, "--out", str(tmp_path / "empty"), "--max-steps", "2"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("a file the user made")
    with pytest.raises(SystemExit, match=r"error: --out .*notes already holds files \(mine.txt\); nothing was written") as e:
        main(["--preset", "tiny", "--data", few_digits, "--out", str(tmp_path / "notes"), "--max-steps", "2"])
    assert "--resume" not in str(e.value) and "--overwrite" in str(e.value)    # no run there to continue
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="is not a folder; choose another --out"):
        main(["--preset", "tiny", "--data", few_digits, "--out", str(tmp_path / "file"), "--max-steps", "2"])
    (tmp_path / "link").symlink_to(tmp_path / "notes")
    with pytest.raises(SystemExit, match="is a link; choose another --out"):
        main(["--preset", "tiny", "--data", few_digits, "--out", str(tmp_path / "link"), "--max-steps", "2", "--overwrite"])
    # --overwrite never moves away what the run itself reads: here its data
    inside = tmp_path / "notes" / "data"
    shutil.copytree(few_digits, inside)
    with pytest.raises(SystemExit, match=r"--overwrite cannot move .*notes aside: it holds .*notes/data"):
        main(["--preset", "tiny", "--data", str(inside), "--out", str(tmp_path / "notes"), "--max-steps", "2", "--overwrite"])
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["data", "mine.txt"]


def test_a_run_stopped_by_its_time_cap_says_so_with_the_command_that_continues_it(few_digits, tmp_path, capsys):
    from train.train import main

    argv = ["--preset", "tiny", "--data", few_digits, "--out", str(tmp_path / "run"), "--max-steps", "30",
            "--max-minutes", "0.0001", "--threads", "1"]
    main(argv)
    captured = capsys.readouterr()
    step = read_meta(tmp_path / "run" / "checkpoint")["step"]
    assert step < 30 and f"stopped by --max-minutes 0.0001 at step {step} of 30" in captured.err
    assert "less training than planned" in captured.err
    command = captured.out.split("To continue where it stopped (for another --max-minutes):\n  ")[1].strip()
    assert command.split()[-1] == "--resume" and command.split()[3:-1] == argv
    main(command.split()[3:-3] + ["--max-minutes", "0", "--resume"])          # the command, with no cap: it finishes
    assert read_meta(tmp_path / "run" / "checkpoint")["step"] == 30 and "stopped short" not in capsys.readouterr().out
