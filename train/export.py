"""Export a training run's EMA checkpoint for shipping: float16 weights, no training state.

    python -m train.export runs/fewshot/animals-rtm --out checkpoints/noto-faces-rtm

This is the first step of the shipping pipeline, `python -m train.ship RUN --out CHECKPOINT`,
which adds the training images, the evaluation, the app's map and (with --full) the model card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from .cli import positional_out, program_name


KEEP = ("data", "data_source", "num_images", "step", "epoch", "images_seen", "wall_time_s", "threads", "world_size",
        "argv", "weight_change", "train_config", "seed_diversity", "planned_steps",
        # --init-from: the lineage and the budget over every stage (train/init_from.py)
        "init_from", "lineage", "total_steps", "total_images_seen", "total_wall_time_s", "stages")


def training_curve(meta: dict, metrics: list[dict]) -> list[dict]:
    """The --eval-every evaluations over the whole lineage, by steps counted from the first
    stage: the parent checkpoint's curve (from its meta.json, where it is still there), then
    this stage's."""
    offset = meta.get("total_steps", meta.get("step", 0)) - meta.get("step", 0)
    curve = []
    parent = Path(meta["init_from"]) if meta.get("init_from") else None
    if parent and (parent / "meta.json").is_file():
        curve = json.loads((parent / "meta.json").read_text()).get("training_curve", [])
    stage = meta.get("stages", 1)
    keys = ("precision", "recall", "coverage", "coverage_same_distribution", "density", "distinct_nearest", "distinct_nearest_mean",
            "distinct_nearest_blocks", "diversity_seeds",
            "distinct_nearest_uniform", "pixel_rms_nearest_median", "memorisation_ratio", "draws", "draw_size")
    known = {c["total_step"] for c in curve}
    for m in metrics:
        # A stage's step-0 evaluation measures its parent again: the parent's own point stays.
        if m.get("event") == "eval" and offset + m["step"] not in known:
            curve.append({"total_step": offset + m["step"], "stage": stage, "wall_time_s": m["wall_time_s"],
                          **{k: m[k] for k in keys if k in m}, **{f"{k}_sd": m[f"{k}_sd"] for k in keys
                                                                  if f"{k}_sd" in m}})
    return curve


def export_run(run: Path, out: Path) -> str:
    """run/checkpoint (EMA) -> out, float16, with the meta worth keeping; returns a summary line."""
    from rtm_core import load_checkpoint, save_checkpoint

    generator, meta = load_checkpoint(run / "checkpoint")
    keep = {k: v for k, v in meta.items() if k in KEEP}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keep["training_curve"] = training_curve(meta, metrics)
    losses = [m["loss"] for m in metrics if "loss" in m]
    keep["final_loss"] = losses[-1] if losses else None
    rounds = [m for m in metrics if m.get("event") == "reselect"]
    if rounds:  # the RS-IMLE record: did rejection act?
        keep["rs_imle"] = {"eps": rounds[-1]["eps"], "rounds": len(rounds), "pool": rounds[-1]["pool"],
                           "rejected_last_rounds": [m["rejected"] for m in rounds[-3:]],
                           "rejected_total": sum(m["rejected"] for m in rounds)}
    save_checkpoint(generator, out, meta=keep, storage_dtype="float16")
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    return f"exported {run} (step {meta.get('step')}) to {out}: {size:.1f} MB"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-export", "train.export"),
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the training run's folder (rtm-train's --out)")
    parser.add_argument("old_out", type=Path, nargs="?", help=argparse.SUPPRESS)   # the output as a positional, until the next release
    parser.add_argument("--out", type=Path, help="the checkpoint folder to write")
    args = parser.parse_args(argv)
    out = positional_out(parser, args.out, args.old_out)
    if not (args.run / "checkpoint" / "config.json").is_file():
        parser.exit(1, f"error: {args.run} holds no checkpoint/ (train one with rtm-train --out {args.run})\n")
    print(export_run(args.run, out))


if __name__ == "__main__":
    main()
