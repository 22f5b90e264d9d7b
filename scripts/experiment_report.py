"""Markdown tables for docs/EXPERIMENTS.md from the experiment's runs and their eval.json.

    python scripts/experiment_report.py runs/fewshot > reports/fewshot.md

Reads, for every run folder under the argument: metrics.jsonl (losses, weight change,
RS-IMLE rounds) and checkpoint/eval.json (python -m train.evaluate ... --draws 5).
"""

import json
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
            "diversity_first": first, "diversity_last": diversity[-1] if diversity else None}


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


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/fewshot")
    runs = [read_run(f) for f in sorted(root.iterdir()) if (f / "checkpoint" / "eval.json").is_file()]
    adversarial = [r for r in runs if r["config"].get("objective") == "adversarial"]
    out = adversarial_record(adversarial) if adversarial else imle_record(runs)
    out += ["", "### At the trained number of steps (mean ± sd over 5 draws of 110 samples)", "",
            "| run | h | " + " | ".join(METRICS) + " | KID-EffNet | memorisation | near-copies |",
            "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " | ---: | ---: | ---: |"]
    for r in runs:
        e = r["eval"]
        p = at(e, e["trained_steps"])
        out.append(f"| {r['name']} | {e['trained_steps']} | " + " | ".join(pm(p, m) for m in METRICS)
                   + f" | {pm(p, 'kid_effnet')} | {p['memorisation_ratio']:.2f} | {100 * p['near_copy_share']:.0f} % |")
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
