"""scripts/experiment_report.py: the tables of docs/EXPERIMENTS.md, and its refusal to compare
an arm that stopped before its planned steps."""

import importlib.util
import json
from pathlib import Path

import pytest

from train.config import PRESETS, TrainConfig
from train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("experiment_report", ROOT / "scripts" / "experiment_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


@pytest.mark.training
def test_a_finished_run_is_read_and_one_stopped_short_is_refused(few_digits, tmp_path):
    out = tmp_path / "faces-rtm"
    train(TrainConfig(**{**PRESETS["tiny"], "data": few_digits, "out": str(out), "progress": False,
                         "max_steps": 10, "log_every": 5}))
    (out / "checkpoint" / "eval.json").write_text("{}")
    run = report.read_run(out)
    assert run["logs"][-1]["step"] == 10 and run["rounds"][0]["pool"] == 240
    assert run["diversity_first"]["step"] == 0 and report.diversity(run["diversity_last"]).count(" / ") == 1
    row = report.imle_record([run])[-1]
    assert row.startswith("| faces-rtm | 10 |") and " → " in row

    config = json.loads((out / "train_config.json").read_text())
    (out / "train_config.json").write_text(json.dumps({**config, "max_steps": 20}))   # as if --max-minutes cut it
    with pytest.raises(SystemExit, match="faces-rtm stopped at step 10 of 20; continue it with --resume"):
        report.read_run(out)


def test_arms_are_compared_across_training_seeds_by_their_ranges():
    def run(name, precision, distinct):
        point = {"steps": 8, "precision": precision, "recall": 0.5, "density": 1.0, "coverage": 0.6,
                 "kid_effnet": 0.05, "distinct_nearest": distinct}
        return {"name": name, "eval": {"trained_steps": 8, "per_step": [point]}}

    assert report.arm_and_seed("faces-rtm-h1-s1") == ("faces-rtm-h1", "s1")
    assert report.arm_and_seed("faces-mlp") == ("faces-mlp", "")
    lines = report.across_training_seeds([run("faces-rtm-s0", 0.80, 50), run("faces-rtm-s1", 0.84, 40),
                                          run("faces-rtm-h1-s0", 0.70, 45), run("faces-rtm-h1-s1", 0.79, 30),
                                          run("faces-mlp", 0.2, 5)])      # one seed: no spread, left out
    table = "\n".join(lines)
    assert "| faces-rtm | 2 | 0.820 [0.800, 0.840] |" in table and "faces-mlp" not in table
    # precision: [0.80, 0.84] vs [0.70, 0.79] do not overlap; distinct nearest: [40, 50] vs [30, 45] do
    assert "- faces-rtm vs faces-rtm-h1: precision (higher: faces-rtm)" in lines
