"""Markdown tables for docs/EXPERIMENTS.md from the experiment's runs and their eval.json.

    python scripts/experiment_report.py runs/fewshot > reports/fewshot.md

Reads, for every run folder under the argument: metrics.jsonl (losses, weight change,
RS-IMLE rounds) and checkpoint/eval.json (python -m train.evaluate ... --draws 5).
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

METRICS = ("precision", "recall", "density", "coverage")


def read_run(folder: Path) -> dict:
    lines = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    logs = [l for l in lines if "loss" in l or "loss_G" in l]
    rounds = [l for l in lines if l.get("event") == "reselect"]
    evaluation = json.loads((folder / "checkpoint" / "eval.json").read_text())
    config = json.loads((folder / "train_config.json").read_text())
    if not logs or logs[-1]["step"] < config["max_steps"]:
        # Arms are compared at equal optimizer steps: one stopped early (--max-minutes on a busy
        # machine) would make the table compare different budgets without saying so.
        sys.exit(f"{folder.name} stopped at step {logs[-1]['step'] if logs else 0} of {config['max_steps']}; "
                 f"continue it with --resume (same flags) before comparing")
    probes = [l for l in lines if l.get("event") == "seed_diversity"]   # the start (IMLE); every checkpoint (adversarial)
    first = probes[0] if probes else None
    diversity = [l["seed_diversity"] for l in logs if "seed_diversity" in l] or probes[1:]
    return {"name": folder.name, "logs": logs, "rounds": rounds, "eval": evaluation, "config": config,
            "diversity_first": first, "diversity_last": diversity[-1] if diversity else None,
            "curve": [l for l in lines if l.get("event") == "eval"]}   # --eval-every while training


def arm_and_seed(name: str) -> tuple[str, str]:
    """'faces-rtm-h1-s1' -> ('faces-rtm-h1', 's1'); a name without a seed suffix is its own arm."""
    match = re.fullmatch(r"(.+)-(s\d+)", name)
    return (match.group(1), match.group(2)) if match else (name, "")


def diversity(record) -> str:
    """'0.54 / 12' (w spread / distinct nearest of seeds 0-99, EMA), '-' for runs made before the probe."""
    return "-" if record is None else f"{record['ema']['w_spread']:.2f} / {record['ema']['distinct_nearest']}"


def raw_and_ema(record) -> str:
    """'12 / 15' (distinct nearest of seeds 0-99: the raw generator / its EMA), '-' without a probe."""
    return "-" if record is None else f"{record['model']['distinct_nearest']} / {record['ema']['distinct_nearest']}"


def pm(p: dict, key: str, digits: int = 3) -> str:
    return f"{p[key]:.{digits}f} ± {p[key + '_sd']:.{digits}f}"


def mean(key: str, logs: list[dict]) -> float:
    return sum(log[key] for log in logs) / len(logs)


def at(evaluation: dict, h: int) -> dict:
    return next(p for p in evaluation["per_step"] if p["steps"] == h)


def imle_record(runs: list[dict]) -> list[str]:
    out = ["### Training record", "",
           "| run | steps | loss first → last (mean of 5 logs) | pixel MSE last | mapper moved | decoder moved | "
           "rounds | pool | rejected per round (last 3) | matched distance p50 first → last | "
           "w spread / distinct nearest at start → end |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        logs, rounds = r["logs"], r["rounds"]
        wc = logs[-1]["weight_change"]
        out.append(f"| {r['name']} | {logs[-1]['step']} | {mean('loss', logs[:5]):.3f} → {mean('loss', logs[-5:]):.3f} | {logs[-1]['pixel']:.4f} | "
                   f"{100 * wc['mapping']:.1f} % | {100 * wc['synthesis']:.1f} % | {len(rounds)} | {rounds[-1]['pool']} | "
                   f"{', '.join(str(x['rejected']) for x in rounds[-3:])} | "
                   f"{rounds[0]['matched_distance']['p50']:.3f} → {rounds[-1]['matched_distance']['p50']:.3f} | "
                   f"{diversity(r['diversity_first'])} → {diversity(r['diversity_last'])} |")
    return out


def adversarial_record(runs: list[dict]) -> list[str]:
    out = ["### Training record (adversarial)", "",
           "| run | steps | wall time | loss_G first → last | loss_D first → last | D(real) / D(fake) last | "
           "R1 penalty last | mapper moved | decoder moved | D moved | distinct nearest raw G / EMA last |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        logs = r["logs"]
        wc = logs[-1]["weight_change"]
        out.append(f"| {r['name']} | {logs[-1]['step']} | {logs[-1]['wall_time_s'] / 60:.0f} min | "
                   f"{mean('loss_G', logs[:5]):.3f} → {mean('loss_G', logs[-5:]):.3f} | "
                   f"{mean('loss_D', logs[:5]):.3f} → {mean('loss_D', logs[-5:]):.3f} | "
                   f"{mean('d_real', logs[-5:]):.2f} / {mean('d_fake', logs[-5:]):.2f} | {logs[-1]['r1_penalty']:.3f} | "
                   f"{100 * wc['mapping']:.1f} % | {100 * wc['synthesis']:.1f} % | {100 * wc['discriminator']:.1f} % | "
                   f"{raw_and_ema(r['diversity_last'])} |")
    return out


def learning_curve(runs: list[dict]) -> list[str]:
    """The in-training evaluations (--eval-every: 200 samples in 5 draws at the trained H), so
    that who learns faster shows, e.g. at 1,500 steps."""
    steps = sorted({e["step"] for r in runs for e in r["curve"]})
    if not steps:
        return []
    out = ["### Over training (in-training evaluations at the trained H: precision / recall / coverage, distinct nearest)", "",
           "| run | " + " | ".join(f"step {s:,} ({samples(runs, s)})" for s in steps) + " |",
           "| --- | " + " | ".join("---:" for _ in steps) + " |"]
    for r in runs:
        by_step = {e["step"]: e for e in r["curve"]}
        out.append(f"| {r['name']} | " + " | ".join(
            f"{e['precision']:.2f} / {e['recall']:.2f} / {e['coverage']:.2f}, {e['distinct_nearest']}" if (e := by_step.get(s))
            else "—" for s in steps) + " |")
    return out + [""]


def samples(runs: list[dict], step: int) -> str:
    """'200 samples' (or '200-550 samples' when runs evaluated that step on different counts:
    the k-NN metrics of different sample counts are not comparable)."""
    counts = sorted({e["draws"] * e["draw_size"] for r in runs for e in r["curve"] if e["step"] == step})
    return f"{counts[0]}{'-' + str(counts[-1]) if len(counts) > 1 else ''} samples"


def across_training_seeds(runs: list[dict]) -> list[str]:
    """Every arm with more than one training seed: mean and range over its seeds at the trained
    H, and which pairs of such arms differ beyond that spread. Rule: two arms differ on a
    measure when their ranges over training seeds do not overlap (every seed of one is above
    every seed of the other); with two seeds each, anything weaker is within the noise."""
    measures = (*METRICS, "kid_effnet", "distinct_nearest")
    arms: dict[str, list[dict]] = {}
    for r in runs:
        arms.setdefault(arm_and_seed(r["name"])[0], []).append(at(r["eval"], r["eval"]["trained_steps"]))
    seeded = {arm: points for arm, points in arms.items() if len(points) > 1}
    if not seeded:
        return []
    out = ["### Across training seeds (at the trained H: mean over seeds, [min, max])", "",
           "| arm | seeds | " + " | ".join(measures) + " |", "| --- | ---: | " + " | ".join("---:" for _ in measures) + " |"]
    for arm, points in seeded.items():
        cells = []
        for m in measures:
            values = [p[m] for p in points]
            digits = 0 if m == "distinct_nearest" else 3
            cells.append(f"{statistics.mean(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]")
        out.append(f"| {arm} | {len(points)} | " + " | ".join(cells) + " |")
    out += ["", "Differences beyond the spread across training seeds (ranges that do not overlap):", ""]
    names = list(seeded)
    if len(names) < 2:
        out.append("- only one arm has more than one training seed so far: nothing to compare")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            beyond = []
            for m in measures:
                va, vb = [p[m] for p in seeded[a]], [p[m] for p in seeded[b]]
                if min(va) > max(vb) or min(vb) > max(va):
                    higher = a if min(va) > max(vb) else b
                    beyond.append(f"{m} (higher: {higher})")
            out.append(f"- {a} vs {b}: " + (", ".join(beyond) if beyond else "none"))
    return out + [""]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="runs/fewshot", help="the experiment's folder of runs")
    root = Path(parser.parse_args().root)
    if not root.is_dir():
        parser.error(f"{root} is not a folder: give the experiment's folder, e.g. runs/fewshot")
    runs = [read_run(f) for f in sorted(root.iterdir()) if (f / "checkpoint" / "eval.json").is_file()]
    adversarial = [r for r in runs if r["config"].get("objective") == "adversarial"]
    out = adversarial_record(adversarial) if adversarial else imle_record(runs)
    out += ["", "### At the trained number of steps (mean ± sd over 5 draws of 110 samples)", "",
            "| run | h | " + " | ".join(METRICS) + " | KID-EffNet | memorisation | near-copies | distinct nearest |",
            "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " | ---: | ---: | ---: | ---: |"]
    for r in runs:
        e = r["eval"]
        p = at(e, e["trained_steps"])
        out.append(f"| {r['name']} | {e['trained_steps']} | " + " | ".join(pm(p, m) for m in METRICS)
                   + f" | {pm(p, 'kid_effnet')} | {p['memorisation_ratio']:.2f} | {100 * p['near_copy_share']:.0f} % | "
                   f"{p.get('distinct_nearest', '—')} |")
    out += ["", *across_training_seeds(runs), *learning_curve(runs)]
    out += ["", "### Per refinement step h (RTM arms: trained H = 8)", ""]
    for r in runs:
        e = r["eval"]
        if e["trained_steps"] == 1 and e["mapper"] == "mlp":
            continue
        t = e["trajectory"]
        out += [f"**{r['name']}** (trained H = {e['trained_steps']})", "",
                "| h | precision | recall | density | coverage | KID-EffNet | memorisation | contraction ratio | seeds moving |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in e["per_step"]:
            h = p["steps"]
            ratio = t["contraction_ratio_median"][h - 1]
            out.append(f"| {h} | " + " | ".join(pm(p, m) for m in METRICS) + f" | {pm(p, 'kid_effnet')} | "
                       f"{p['memorisation_ratio']:.2f} | {'—' if ratio is None else f'{ratio:.2f}'} | "
                       f"{100 * t['moving_share'][h - 1]:.0f} % |")
        out += ["", f"Diverged by step {t['steps'][-1]}: {100 * t['diverged_share']:.1f} % of {t['num_seeds']} seeds.", ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
