"""scripts/experiment_report.py: the tables of docs/EXPERIMENTS.md, and its refusal to compare
an arm that stopped before its planned steps."""

import importlib.util
import json
from pathlib import Path

import pytest

from train.config import PRESETS, TrainConfig
from train.loop import train

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("experiment_report", ROOT / "scripts" / "experiment_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


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
