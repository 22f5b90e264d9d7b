"""From a training run to the app in one command (app/prepare.py, rtm-explorer --run): a tiny
run on 120 digits is exported, given its training images, evaluated, mapped, and served."""

import json

import pytest

from app import launcher
from app.prepare import is_prepared, prepare
from app.service import TrajectoryService
from train.config import PRESETS, TrainConfig
from train.loop import train


@pytest.fixture(scope="module")
def run(few_digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "my digits"        # a name with a space: the app's name is "my-digits"
    train(TrainConfig(**{**PRESETS["tiny"], "data": few_digits, "out": str(out), "progress": False, "max_steps": 10}))
    return out


def test_a_run_is_prepared_and_served_under_its_name(run, tmp_path, pixel_features, monkeypatch):
    said = []
    folder = prepare(run, folder=tmp_path, say=said.append)
    assert folder == tmp_path / "my-digits"
    for name in ("config.json", "model.safetensors", "eval.json", "projection.npz", "training_images.npz"):
        assert (folder / name).is_file(), name
    assert [line[:5] for line in said if line.startswith("[") and line.endswith(" s)")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert said[-1].startswith("ready in ") and "rtm-explorer --checkpoint my-digits" in said[-1]
    evaluation = json.loads((folder / "eval.json").read_text())
    assert [p["steps"] for p in evaluation["per_step"]] == [1, 2, 3, 4] and evaluation["num_samples"] == 200
    assert is_prepared(run, folder)

    service = TrajectoryService(tmp_path)
    assert service.names() == ["my-digits"]
    assert len(service.trajectory("my-digits", 5, None).frames) == 4          # H = 3: steps 0..3

    # rtm-explorer --run: already prepared, so it only opens it (nothing is redone)
    stamp = (folder / "eval.json").stat().st_mtime
    monkeypatch.delenv("RTM_CHECKPOINT", raising=False)
    args = launcher.parse_args(["--checkpoints", str(tmp_path), "--run", str(run)])
    assert args.checkpoint == "my-digits" and (folder / "eval.json").stat().st_mtime == stamp


def test_a_name_in_use_by_another_run_or_a_bad_name_is_refused(run, tmp_path, few_digits):
    (tmp_path / "shipped").mkdir()                                  # someone else's checkpoint
    with pytest.raises(ValueError, match="exists and was not prepared from"):
        prepare(run, name="shipped", folder=tmp_path, say=lambda _: None)
    with pytest.raises(ValueError, match="--name must be 1-64 letters"):
        prepare(run, name="../escape", folder=tmp_path, say=lambda _: None)
    with pytest.raises(ValueError, match="is not a finished training run"):
        prepare(tmp_path / "nothing", folder=tmp_path, say=lambda _: None)
