"""Does a new stage measure better than the checkpoint it would replace? (`train.ship --gate`)

    python -m train.gate NEW/eval.json OLD/eval.json     # exit 0: better; 1: not; 2: they do not compare

Both at their trained H (same protocol: seeds, draws, real images). "Better" means no
measure is worse by more than its noise, and at least one of recall, coverage and seed
diversity is better: a stage that only trades recall for precision, or copies its data more
closely, does not replace the model people see. The noise: the sd between draws; for the
distinct-nearest count its sd under uniform sampling (3.1), or between blocks of 100 seeds
when both were counted on several, whichever is larger (the means are compared); for the
share of near-copies (samples nearer a training image than 95 % of the training images are to theirs) twice its
binomial sd over the samples (0.03 at 15 % of 550).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional

from .cli import program_name

# key -> its score (higher is better). Density is 1 for samples distributed as the data (0.995 on
# half-splits of the faces, scripts/split_reference.py): above 1 the samples crowd the data's
# dense parts, below it they leave them, so nearer 1 is better.
MEASURES = {"precision": lambda x: x, "recall": lambda x: x, "coverage": lambda x: x,
            "density": lambda x: -abs(x - 1.0), "kid_effnet": lambda x: -x, "distinct_nearest": lambda x: x,
            "near_copy_share": lambda x: -x}


# A count without draws: its noise scale. 100 seeds nearest to uniformly random faces of 103 give
# 64.2 distinct on average with sd 3.1, so a gain of 1-3 distinct faces is not yet a gain.
COUNT_SPREAD = {"distinct_nearest": 3.1}


def at_trained_h(path: str) -> dict:
    evaluation = json.load(open(path))
    point = next(p for p in evaluation["per_step"] if p["steps"] == evaluation["trained_steps"])
    point = {**point, "num_samples": evaluation.get("num_samples"), "num_real": evaluation.get("num_real")}
    if "near_copy_share" in point and "num_samples" in evaluation:
        share = point["near_copy_share"]
        point["near_copy_share_sd"] = 2 * math.sqrt(max(share * (1 - share), 1e-4) / evaluation["num_samples"])
    return point


def compare(new_path: str | Path, old_path: str | Path) -> tuple[bool, list[str]]:
    """(better, a line per measure and the verdict) for two eval.json files at their trained H."""
    new, old = at_trained_h(new_path), at_trained_h(old_path)
    differ = [k for k in ("num_samples", "draws", "num_real") if new.get(k) != old.get(k)]
    if differ:
        raise ValueError("the two evaluations were not measured alike (" + ", ".join(
            f"{k} {new.get(k)} and {old.get(k)}" for k in differ) + "): compare models of the same data, each "
            "evaluated with the protocol (`python -m train.ship RUN --out CKPT --full`, or rtm-evaluate's defaults)")
    if new.get("distinct_nearest_blocks", 1) > 1 and old.get("distinct_nearest_blocks", 1) > 1:
        # Both counted on several blocks of 100 seeds: compare the means (the noise stays at least
        # one block's sd, like the draws' sd for the other measures).
        for point in (new, old):
            point["distinct_nearest"] = point["distinct_nearest_mean"]
    worse, better = [], []
    lines = [f"{'measure':18s} {'new':>16s} {'old':>16s}"]
    for key, score in MEASURES.items():
        if key not in new or key not in old:
            continue
        spread = max(new.get(f"{key}_sd", 0.0), old.get(f"{key}_sd", 0.0), COUNT_SPREAD.get(key, 0.0))
        gain = score(new[key]) - score(old[key])
        if gain < -spread:
            worse.append(key)
        elif gain > spread and key in ("recall", "coverage", "distinct_nearest"):
            better.append(key)
        fmt = (lambda p: f"{p[key]:.3f} ± {p.get(key + '_sd', 0):.3f}") if isinstance(new[key], float) else \
              (lambda p: str(p[key]))
        lines.append(f"{key:18s} {fmt(new):>16s} {fmt(old):>16s}")
    verdict = not worse and bool(better)
    lines.append(("better: " + ", ".join(better)) if verdict else
                 f"not better (worse: {', '.join(worse) or 'none'}; better: {', '.join(better) or 'none'})")
    return verdict, lines


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-gate", "train.gate"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", help="the new stage's eval.json")
    parser.add_argument("old", help="the eval.json of the checkpoint it would replace")
    args = parser.parse_args(argv)
    for path in (args.new, args.old):
        if not Path(path).is_file():
            parser.exit(1, f"error: {path} is not there\n")
    try:
        better, lines = compare(args.new, args.old)
    except ValueError as e:   # neither better nor worse: they cannot be compared
        parser.exit(2, f"error: {e}\n")
    print("\n".join(lines))
    raise SystemExit(0 if better else 1)


if __name__ == "__main__":
    main()
