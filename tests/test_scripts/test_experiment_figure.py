"""scripts/experiment_figure.py: the side-by-side sample figure of docs/EXPERIMENTS.md, and its
samples-over-training variant."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("experiment_figure", ROOT / "scripts" / "experiment_figure.py")
figure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figure)


def saved_grid(path: Path, columns: int, shade: int) -> None:
    """A grid as training saves it: 8 rows of 32 px cells, 2 px of padding (make_grid); each
    column a flat colour (shade + column index), so the crop can be checked by value."""
    image = np.zeros((8 * 34 + 2, columns * 34 + 2, 3), np.uint8)
    for c in range(columns):
        image[2:, 2 + 34 * c:34 * (c + 1), :] = shade + c
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_over_training_puts_each_saved_steps_final_frames_side_by_side(tmp_path, monkeypatch):
    run = tmp_path / "faces-rtm"
    for k, step in enumerate((500, 1000, 1500)):
        saved_grid(run / "samples" / f"step_{step:07d}.png", columns=8, shade=100 * k)
    panel, label = figure.final_frames_over_training(run)
    assert label == "faces-rtm · 500..1,500"
    assert panel.size == (3 * 36 * figure.SCALE, 274 * figure.SCALE)
    pixels = np.asarray(panel)[100, :, 0]
    # each column is that grid's last (step H) column: shade + 7
    assert {int(pixels[(36 * k + 18) * figure.SCALE]) for k in range(3)} == {7, 107, 207}

    out = tmp_path / "figure.png"
    monkeypatch.setattr(sys, "argv", ["experiment_figure.py", "--over-training", str(run), "--out", str(out)])
    figure.main()
    assert Image.open(out).height == figure.HEADER + 274 * figure.SCALE


def test_a_folder_without_samples_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="has no samples"):
        figure.last_grid(tmp_path)
