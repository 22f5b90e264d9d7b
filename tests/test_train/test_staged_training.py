"""A long run in stages, as the shipped default is trained: stage 1, ship, stage 2 from the
shipped folder (--init-from), ship again; the model card gives the lineage, the whole budget
and the training curve across both stages (tiny model, digits, seconds)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rtm_core import load_checkpoint, read_meta
from train.config import PRESETS, TrainConfig
from train.gate import compare
from train.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def run_script(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.training
def test_two_stages_ship_with_their_lineage_budget_and_curve(few_digits, tmp_path, pixel_features):
    settings = {**PRESETS["tiny"], "data": few_digits, "progress": False, "eval_every": 10, "eval_samples": 100}
    train(TrainConfig(**{**settings, "out": str(tmp_path / "stage1"), "max_steps": 20}))
    shipped1 = tmp_path / "shipped1"
    run_script("-m", "train.export", str(tmp_path / "stage1"), "--out", str(shipped1))
    train(TrainConfig(**{**settings, "out": str(tmp_path / "stage2"), "max_steps": 10, "seed": 1,
                         "init_from": str(shipped1)}))
    shipped2 = tmp_path / "shipped2"
    run_script("-m", "train.export", str(tmp_path / "stage2"), "--out", str(shipped2))

    meta = read_meta(shipped2)
    assert meta["stages"] == 2 and meta["total_steps"] == 30 and meta["init_from"] == str(shipped1)
    # The curve runs over both stages, in steps counted from the first.
    curve = meta["training_curve"]
    assert [(c["total_step"], c["stage"]) for c in curve] == [(10, 1), (20, 1), (30, 2)]
    assert all(0 <= c["recall"] <= 1 and c["distinct_nearest"] >= 1 for c in curve)
    assert all(c["draws"] * c["draw_size"] == 100 for c in curve)   # --eval-samples: the card says how many

    (shipped2 / "eval.json").unlink(missing_ok=True)
    run_script("-m", "train.card", str(shipped2))
    card = (shipped2 / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "\n---\n" in card   # Hugging Face front matter
    assert "| **all** | | **30** | **480** |" in card and f"`{shipped1}`" in card
    assert "## Training curve" in card and (shipped2 / "training_curve.png").stat().st_size > 1000
    draws = curve[0]["draws"]
    assert f"| 30 | 2 | {draws} x {100 // draws} |" in card                       # each evaluation's sample count
    assert "--init-from" in card                                                    # the stage's own command
    load_checkpoint(shipped2)


def write_eval(path: Path, **at_h) -> str:
    point = {"steps": 8, "precision": 0.6, "precision_sd": 0.05, "recall": 0.1, "recall_sd": 0.03,
             "coverage": 0.3, "coverage_sd": 0.04, "distinct_nearest": 30, "density": 1.2, "density_sd": 0.1,
             "near_copy_share": 0.15, **at_h}
    path.write_text(json.dumps({"trained_steps": 8, "num_samples": 200, "per_step": [{**point, "steps": 1}, point]}))
    return str(path)


def test_a_stage_ships_only_if_it_measures_better(tmp_path):
    old = write_eval(tmp_path / "old.json")

    def verdict(**at_h) -> int:
        new = write_eval(tmp_path / "new.json", **at_h)
        return 0 if compare(new, old)[0] else 1

    assert verdict(recall=0.3, coverage=0.5, distinct_nearest=45) == 0          # better
    assert verdict(recall=0.12) == 1                                            # within the spread: not better
    assert verdict(recall=0.3, precision=0.4) == 1                              # recall bought with precision
    assert verdict(distinct_nearest=40, coverage=0.2) == 1                      # coverage worse beyond its sd
    assert verdict(distinct_nearest=33) == 1                                    # +3 distinct: within a count's noise
    assert verdict(distinct_nearest=34) == 0
    assert verdict(recall=0.3, near_copy_share=0.2) == 0                        # +0.05: within 2 binomial sd (0.06)
    assert verdict(recall=0.3, near_copy_share=0.3) == 1                        # more near-copies: copies its data more
    assert verdict(recall=0.3, density=0.95) == 0                               # nearer 1 is not worse...
    assert verdict(recall=0.3, density=1.6) == 1                                # ...crowding the data's dense parts is


def test_seed_diversity_counted_on_several_blocks_compares_the_means(tmp_path):
    blocks = {"distinct_nearest_blocks": 5, "distinct_nearest_mean": 30.0, "distinct_nearest_sd": 2.0}
    old = write_eval(tmp_path / "old.json", **blocks)

    def verdict(**at_h) -> int:
        new = write_eval(tmp_path / "new.json", **{**blocks, **at_h})
        return 0 if compare(new, old)[0] else 1

    assert verdict(distinct_nearest_mean=34.5) == 0                               # the mean over 500 seeds rose
    assert verdict(distinct_nearest=40, distinct_nearest_mean=31.0) == 1          # a lucky first block is not a gain
    assert verdict(distinct_nearest_mean=34.5, distinct_nearest_sd=5.0) == 1      # within the blocks' spread


def test_evaluations_measured_differently_are_not_compared(tmp_path):
    """Another protocol or other data: neither better nor worse. The command says so (exit 2)."""
    old = write_eval(tmp_path / "old.json")
    other = json.loads(Path(old).read_text())
    for changes in ({"num_samples": 550}, {"num_real": 40}):
        new = tmp_path / "new.json"
        new.write_text(json.dumps({**other, **changes}))
        with pytest.raises(ValueError, match="not measured alike"):
            compare(new, old)
    done = subprocess.run([sys.executable, "-m", "train.gate", str(new), old], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: the two evaluations were not measured alike")
