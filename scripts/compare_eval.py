"""Does a new stage measure better than the checkpoint it would replace?

    python scripts/compare_eval.py NEW/eval.json OLD/eval.json     # exit 0: better; 1: not

Both at their trained H (same protocol: seeds, draws, real images). "Better" means no
measure is worse by more than the spread between draws (for the distinct-nearest count, its
sd under uniform sampling, 3.1), and at least one of recall,
coverage and seed diversity is better: a stage that only trades recall for precision (or
copies its data more closely) does not replace the model people see.
"""

import json
import sys

# (key, higher is better)
MEASURES = (("precision", True), ("recall", True), ("coverage", True), ("density", True), ("kid_effnet", False),
            ("distinct_nearest", True))


# A count without draws: its noise scale. 100 seeds nearest to uniformly random faces of 103 give
# 64.2 distinct on average with sd 3.1, so a gain of 1-3 distinct faces is not yet a gain.
COUNT_SPREAD = {"distinct_nearest": 3.1}


def at_trained_h(path: str) -> dict:
    evaluation = json.load(open(path))
    return next(p for p in evaluation["per_step"] if p["steps"] == evaluation["trained_steps"])


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    new, old = at_trained_h(sys.argv[1]), at_trained_h(sys.argv[2])
    worse, better = [], []
    print(f"{'measure':18s} {'new':>16s} {'old':>16s}")
    for key, up in MEASURES:
        if key not in new or key not in old:
            continue
        spread = max(new.get(f"{key}_sd", 0.0), old.get(f"{key}_sd", 0.0), COUNT_SPREAD.get(key, 0.0))
        gain = (new[key] - old[key]) * (1 if up else -1)
        if gain < -spread:
            worse.append(key)
        elif gain > spread and key in ("recall", "coverage", "distinct_nearest"):
            better.append(key)
        fmt = (lambda p: f"{p[key]:.3f} ± {p.get(key + '_sd', 0):.3f}") if isinstance(new[key], float) else \
              (lambda p: str(p[key]))
        print(f"{key:18s} {fmt(new):>16s} {fmt(old):>16s}")
    verdict = not worse and bool(better)
    print(("better: " + ", ".join(better)) if verdict else
          f"not better (worse: {', '.join(worse) or 'none'}; better: {', '.join(better) or 'none'})")
    raise SystemExit(0 if verdict else 1)


if __name__ == "__main__":
    main()
