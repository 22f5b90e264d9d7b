"""scripts/raw_generator.py: a run's raw (non-EMA) generator as a checkpoint that
train.evaluate can open, with meta.json saying which weights it holds."""

import importlib.util
from pathlib import Path

import pytest
import torch

from train.trainer import train
from rtm_core import load_checkpoint
from train.config import ADVERSARIAL_PRESETS, TrainConfig
from train.init_from import TRAIN_STATE_FILE

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("raw_generator", ROOT / "scripts" / "raw_generator.py")
raw_generator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(raw_generator)


def tiny_run(digits: str, run: Path, steps: int) -> Path:
    train(TrainConfig(**{**ADVERSARIAL_PRESETS["tiny"], "data": digits, "out": str(run),
                          "progress": False, "max_steps": steps, "checkpoint_every": steps}))
    return run


@pytest.mark.training
def test_the_raw_weights_of_a_run_open_as_a_checkpoint(digits, tmp_path):
    run = tiny_run(digits, tmp_path / "gan", steps=6)
    raw, meta = load_checkpoint(raw_generator.export_raw(run, tmp_path / "raw"))
    G = torch.load(run / "checkpoint" / TRAIN_STATE_FILE, map_location="cpu", weights_only=True)["model"]
    ema, _ = load_checkpoint(run / "checkpoint")
    state = raw.state_dict()
    assert all(torch.equal(state[k], G[k]) for k in G)                     # exactly the trained weights...
    assert any(not torch.equal(state[k], v) for k, v in ema.state_dict().items())   # ...not their average
    assert meta["weights"].startswith("raw") and meta["objective"] == "adversarial"


@pytest.mark.training
def test_a_folder_without_a_train_state_is_refused(digits, tmp_path):
    run = tiny_run(digits, tmp_path / "gan", steps=2)
    (run / "checkpoint" / TRAIN_STATE_FILE).unlink()
    with pytest.raises(SystemExit, match="only a training run's checkpoint keeps the raw weights"):
        raw_generator.export_raw(run, tmp_path / "raw")
