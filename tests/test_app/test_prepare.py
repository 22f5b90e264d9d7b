"""From a training run to the app in one command (app/prepare.py, rtm-explorer --run): a tiny
run on 120 digits is exported, given its training images, evaluated, mapped, and served."""

import json

import pytest

from app import launcher
from app.prepare import is_prepared, prepare
from app.service import TrajectoryService
from train.config import PRESETS, TrainConfig
from train.ship import NotShipped, ship
from train.trainer import train


@pytest.fixture(scope="module")
def run(few_digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "my digits"        # a name with a space: the app's name is "my-digits"
    train(TrainConfig(**{**PRESETS["tiny"], "data": few_digits, "out": str(out), "progress": False, "max_steps": 10}))
    return out


@pytest.mark.training
def test_a_run_is_prepared_and_served_under_its_name(run, tmp_path, pixel_features, monkeypatch):
    said = []
    folder = prepare(run, folder=tmp_path, say=said.append)
    assert folder == tmp_path / "my-digits"
    for name in ("config.json", "model.safetensors", "eval.json", "projection.npz", "training_images.npz"):
        assert (folder / name).is_file(), name
    assert [line[:5] for line in said if line.startswith("[") and line.endswith(" s)")] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert said[-1].startswith("ready: ") and "rtm-explorer --checkpoint my-digits" in said[-1]
    evaluation = json.loads((folder / "eval.json").read_text())
    assert [p["steps"] for p in evaluation["per_step"]] == [1, 2, 3, 4] and evaluation["num_samples"] == 200
    assert is_prepared(run, folder)

    service = TrajectoryService(tmp_path)
    assert service.names() == ["my-digits"]
    assert len(service.trajectory("my-digits", 5, None).frames) == 4          # H = 3: steps 0..3

    # rtm-explorer --run: already prepared, so it only opens it (nothing is redone)
    stamp = (folder / "eval.json").stat().st_mtime
    monkeypatch.delenv("RTM_CHECKPOINT", raising=False)
    args = launcher.parse_args(["--checkpoints", str(tmp_path), "--my-checkpoints", str(tmp_path), "--run", str(run)])
    assert args.checkpoint == "my-digits" and (folder / "eval.json").stat().st_mtime == stamp
    assert args.folders == [tmp_path]                                # one folder given twice is listed once


@pytest.mark.training
def test_a_name_in_use_by_another_run_or_a_bad_name_is_refused(run, tmp_path, few_digits):
    (tmp_path / "shipped").mkdir()                                  # someone else's checkpoint
    with pytest.raises(ValueError, match="exists and was not prepared from"):
        prepare(run, name="shipped", folder=tmp_path, say=lambda _: None)
    with pytest.raises(ValueError, match="--name must be 1-64 letters"):
        prepare(run, name="../escape", folder=tmp_path, say=lambda _: None)
    with pytest.raises(ValueError, match="shipped checkpoint's name"):
        prepare(run, name="noto-faces-rtm", folder=tmp_path, say=lambda _: None)
    with pytest.raises(ValueError, match="is not a finished training run"):
        prepare(tmp_path / "nothing", folder=tmp_path, say=lambda _: None)


@pytest.mark.training
def test_the_whole_path_from_a_folder_of_images(few_digits, tmp_path, pixel_features, monkeypatch):
    """What the README's three commands do, in-process: a folder of pictures -> data -> a run
    -> app-ready under the chosen name -> served."""
    import numpy as np
    from PIL import Image

    from train.data import main as prepare_data
    from train.train import main as train_main

    pictures = tmp_path / "my pictures"
    pictures.mkdir()
    for i, image in enumerate(np.load(f"{few_digits}/images.npy")[:40]):
        Image.fromarray(np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image).resize((48, 48)).save(
            pictures / f"{i}.png")
    data, run, checkpoints = tmp_path / "data-16", tmp_path / "runs" / "mine", tmp_path / "my_checkpoints"
    prepare_data(["folder", "--src", str(pictures), "--resolution", "16", "--out", str(data)])
    train_main(["--preset", "tiny", "--data", str(data), "--out", str(run), "--max-steps", "6", "--no-progress"])
    monkeypatch.delenv("RTM_CHECKPOINT", raising=False)
    monkeypatch.delenv("RTM_CHECKPOINTS", raising=False)
    # The user's run goes to their own folder (made if missing), never among the shipped checkpoints,
    # and the app lists both.
    args = launcher.parse_args(["--my-checkpoints", str(checkpoints), "--run", str(run), "--name", "my-faces"])
    assert args.checkpoint == "my-faces" and is_prepared(run, checkpoints / "my-faces")
    assert args.folders == [launcher.DEFAULT_CHECKPOINTS, checkpoints]
    assert not (launcher.DEFAULT_CHECKPOINTS / "my-faces").exists()
    both = TrajectoryService(args.folders)
    assert {"my-faces", "noto-faces-rtm"} <= set(both.names()) and both.folder("my-faces") == checkpoints / "my-faces"
    evaluation = json.loads((checkpoints / "my-faces" / "eval.json").read_text())
    assert "fd_effnet" not in evaluation["per_step"][0] and "kid_effnet" in evaluation["per_step"][0]  # quick: no FD
    result = TrajectoryService(checkpoints).trajectory("my-faces", 0, None)
    assert result.frames.shape == (4, 16, 16, 3)                 # tiny: H = 3, RGB pictures stay RGB


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.training
def test_a_gate_that_says_no_or_a_failing_step_leaves_the_folder_as_it_was(run, tmp_path, pixel_features, monkeypatch):
    """train.ship builds beside --out and swaps at the end: what was there is never half replaced."""
    import train.ship

    small = {"num_samples": 40, "draws": 2, "map": "pca", "map_seeds": 32}                    # seconds, not minutes
    monkeypatch.setattr(train.ship, "QUICK", {**train.ship.QUICK, **small})
    monkeypatch.setattr(train.ship, "PROTOCOL", {**train.ship.PROTOCOL, **small, "steps": [1, 2], "fd": False})
    monkeypatch.setattr(train.ship, "FULL", {"map": "pca", "map_seeds": 32})
    out = tmp_path / "shipped"
    ship(run, out, say=lambda _: None)
    (out / "notes.md").write_text("written by hand\n")
    evaluation = json.loads((out / "eval.json").read_text())
    for point in evaluation["per_step"]:            # a model no run can beat
        point.update(precision=1.0, recall=1.0, coverage=1.0, distinct_nearest=100, kid_effnet=0.0, density=1.0)
    (out / "eval.json").write_text(json.dumps(evaluation))
    before = snapshot(out)
    with pytest.raises(ValueError, match="add --full"):
        ship(run, out, gate=True, say=lambda _: None)                 # a gate compares the protocol's evaluations
    with pytest.raises(NotShipped, match="not shipped: it does not measure better"):
        ship(run, out, full=True, gate=True, say=lambda _: None)
    assert snapshot(out) == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    import rtm_core.projection

    real_projection = rtm_core.projection.make_projection
    monkeypatch.setattr(rtm_core.projection, "make_projection", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        ship(run, out, say=lambda _: None)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]
    monkeypatch.setattr(rtm_core.projection, "make_projection", real_projection)
    ship(run, out, say=lambda _: None)               # shipped: the new model, and the hand-written notes stay
    assert (out / "notes.md").read_text() == "written by hand\n" and snapshot(out)["eval.json"] != before["eval.json"]
    ship(run, out, full=True, say=lambda _: None)    # a full ship writes the card, titled with the folder's name
    assert (out / "README.md").read_text().count("\n# shipped\n") == 1
    ship(run, out, say=lambda _: None)               # a quick one after it drops the card that described the old model
    assert not (out / "README.md").exists() and (out / "notes.md").is_file()
