"""Write a checkpoint's model card (README.md) and sample grid from its meta.json and eval.json.

    python -m train.card checkpoints/noto-faces-rtm     (python -m train.ship --full writes it too)

The card states only what the files say: the training settings, budget, lineage, weight
change, training curve and RS-IMLE record from meta.json, the metrics from eval.json; what
the numbers do not show goes in the folder's notes.md, which the card includes.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path

from PIL import Image

from rtm_core import load_checkpoint, refinement_grid, to_pil
from rtm_core.metrics import distinct_text

from .cli import program_name

SAMPLES_FILE = "samples.png"
CURVE_FILE = "training_curve.png"
NOTES_FILE = "notes.md"
# Hugging Face model-card metadata: the folder can be pushed to the Hub as it is.
FRONT_MATTER = """---
license: apache-2.0
library_name: rtm-explorer
pipeline_tag: unconditional-image-generation
tags:
- rtm
- recursive-token-mapper
- imle
- rs-imle
- emoji
- few-shot
"""


def front_matter(meta: dict) -> str:
    noto = "Noto Color Emoji" in str(meta.get("data_source"))
    return FRONT_MATTER + ("datasets:\n- noto-color-emoji\n" if noto else "") + "---\n"


def budget_totals(meta: dict) -> tuple[int, int, float]:
    """Steps, images seen and wall-time seconds over every stage (a run without stages: its own)."""
    return (meta.get("total_steps", meta.get("step", 0)), meta.get("total_images_seen", meta.get("images_seen", 0)),
            meta.get("total_wall_time_s", meta.get("wall_time_s", 0)))


def budget_lines(meta: dict) -> list[str]:
    """Steps, images, wall time and threads of every stage, and their totals."""
    stages = meta.get("lineage", []) + [{"checkpoint": "this stage", **{k: meta.get(k) for k in
                                         ("step", "images_seen", "wall_time_s", "threads", "world_size", "data")}}]
    lines = ["| stage | started from | steps | images seen | wall time | threads x processes |",
             "| ---: | --- | ---: | ---: | ---: | --- |"]
    for i, st in enumerate(stages, 1):
        parent = "random initialisation" if i == 1 else f"`{stages[i - 2]['checkpoint']}`"
        if i == len(stages):
            parent = f"`{meta['init_from']}`" if meta.get("init_from") else "random initialisation"
        lines.append(f"| {i} | {parent} | {st.get('step') or 0:,} | {st.get('images_seen') or 0:,} | "
                     f"{(st.get('wall_time_s') or 0) / 60:.0f} min | {st.get('threads') or '?'} x "
                     f"{st.get('world_size') or 1} |")
    steps, images, wall_s = budget_totals(meta)
    lines.append(f"| **all** | | **{steps:,}** | **{images:,}** | **{wall_s / 60:.0f} min** | |")
    return lines


def coverage_scale(evaluation: dict) -> float:
    """The coverage that samples drawn from the data's own distribution reach at the evaluation's
    sample counts (each draw against all training images)."""
    from rtm_core.metrics import expected_coverage

    at_h = evaluation["per_step"][0]
    return expected_coverage(evaluation["num_real"], at_h.get("draw_size", evaluation["num_samples"]))


def curve_lines(folder: Path, curve: list[dict]) -> list[str]:
    """The --eval-every evaluations over training: a table and training_curve.png."""
    if not curve:
        return []
    picture = plot_curve(folder, curve)
    lines = ["## Training curve", "",
             f"![training curve]({CURVE_FILE})" if picture else
             "(No picture: matplotlib is not installed; `pip install matplotlib`, then `python -m train.card` again.)", "",
             "Evaluated during training (`--eval-every`): the EMA model at its trained H, seeds 0..n-1 in draws "
             "against the training set (mean ± sd over draws; n in the samples column: k-NN metrics of different "
             "sample counts are not comparable, fewer samples read lower coverage); distinct nearest: of seeds "
             "0-99, how many distinct training images are nearest (pixel RMS). Steps count from the first stage.", "",
             "| steps | stage | samples | precision | recall | coverage | distinct nearest of 100 |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in curve:
        samples = f"{c['draws']} x {c['draw_size']}" if "draw_size" in c else "–"
        lines.append(f"| {c['total_step']:,} | {c.get('stage', 1)} | {samples} | {fmt(c, 'precision')} | "
                     f"{fmt(c, 'recall')} | {fmt(c, 'coverage')} | {c['distinct_nearest']} |")
    return lines + [""]


def plot_curve(folder: Path, curve: list[dict]) -> bool:
    """training_curve.png; False where matplotlib is not installed (a test and docs tool, not a
    runtime requirement: the card then has the table alone)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c["total_step"] for c in curve]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in ("precision", "recall", "coverage"):
        ax.errorbar(steps, [c[key] for c in curve], yerr=[c.get(f"{key}_sd", 0) for c in curve], marker="o",
                    capsize=2, label=key)
    if "coverage_same_distribution" in curve[-1]:
        ax.axhline(curve[-1]["coverage_same_distribution"], ls=":", c="grey", label="coverage of new data")
    ax.set(xlabel="optimizer steps (all stages)", ylim=(0, 1.02), title="k-NN metrics vs the training set (k = 3)")
    ax.legend(loc="lower right")
    ax2.plot(steps, [c["distinct_nearest"] for c in curve], marker="o", label="distinct nearest images, 100 seeds")
    ax2.axhline(curve[-1].get("distinct_nearest_uniform", 0), ls=":", c="grey", label="uniform-sampling ceiling")
    ax2.set(xlabel="optimizer steps (all stages)", title="seed diversity")
    ax2.legend(loc="lower right")
    for a in (ax, ax2):
        for b in sorted({c["total_step"] for c in curve if c.get("stage", 1) > 1 and
                         c is next(d for d in curve if d.get("stage") == c.get("stage"))}):
            a.axvline(b, ls="--", c="lightgrey")
    fig.tight_layout()
    fig.savefig(folder / CURVE_FILE, dpi=90)
    plt.close(fig)
    return True


def sample_grid(folder: Path, generator, steps: list[int]) -> None:
    """Rows: seeds 0..7; columns: the image after each number of steps. Nearest-neighbour
    upscaling x4, so 32x32 pixels stay crisp."""
    image = to_pil(refinement_grid(generator, range(8), steps))
    image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST).save(folder / SAMPLES_FILE)


def describe_mapper(m) -> str:
    if m.kind == "rtm":
        arm = "recursion off (H = 1), the ablation arm" if m.num_steps == 1 else f"H = {m.num_steps} outer steps"
        return (f"RTM (recursive token mapper): T = {m.num_tokens} tokens of width {m.token_dim}, {arm}, "
                f"L = {m.num_cycles} inner cycles, {m.block_layers} mixer layer(s) in the shared block")
    if m.mlp_layer == "linear" and m.mlp_gain == 1 and m.lr_multiplier == 1:
        name = "RS-IMLE's mapping network (torch Linear, He init, full learning rate): the IMLE baseline"
    elif m.mlp_layer == "equalized" and math.isclose(m.mlp_gain, math.sqrt(2)) and m.lr_multiplier == 0.01:
        name = "StyleGAN2's mapping network (equalized lr x 0.01, gain sqrt 2)"
    else:
        name = f"an MLP variant ({m.mlp_layer} layers, gain {m.mlp_gain:.3g}, lr multiplier {m.lr_multiplier})"
    return f"one-pass MLP, {m.mlp_layers} x {m.mlp_width}: {name}"


def ema_text(t: dict) -> str:
    """'0.995', or for a half-life given in images '0.99497 per step (half-life 2,200 images)'."""
    if t.get("ema_half_life_images"):
        return f"{t['ema_decay']:.5f} per step (half-life {t['ema_half_life_images']:,} images)"
    return f"{t.get('ema_decay')}"


def training_command(meta: dict, cfg) -> str:
    if meta.get("argv") is not None:   # recorded by the run itself
        world = meta.get("world_size", 1)
        launcher = f"torchrun --nproc_per_node={world} -m train.train" if world > 1 else "python -m train.train"
        return f"OMP_NUM_THREADS={meta.get('threads', 1)} {launcher} {shlex.join(meta['argv'])}"
    t = meta.get("train_config", {})
    flags = [f"--preset cpu --data {t.get('data')}"]
    flags += [f"--mapper.{k.replace('_', '-')} {v}" for k, v in t.get("mapper", {}).items()]
    if t.get("loss_perceptual") == 0:
        flags.append(f"--loss-perceptual 0 --loss-pixel {t.get('loss_pixel')}")
    return "OMP_NUM_THREADS=1 python -m train.train " + " ".join(flags)


def diversity_lines(probe) -> list[str]:
    """The seed diversity logged while training (train.run.DiversityProbe), first and last."""
    if not probe or "last" not in probe:
        return []
    first, last = probe["first"], probe["last"]
    return [f"- Seed diversity of the EMA while training (seeds 0-99): w spread (std over seeds / RMS) "
            f"{first['ema']['w_spread']:.2f} at step {first['step']:,} → {last['ema']['w_spread']:.2f} at step "
            f"{last['step']:,}; distinct nearest training images {first['ema']['distinct_nearest']} → "
            f"{last['ema']['distinct_nearest']} of 100."]


def fmt(p: dict, key: str, digits: int = 3) -> str:
    if key not in p:   # e.g. no Fréchet distance in a quick evaluation (app.prepare)
        return "—"
    sd = p.get(f"{key}_sd")
    return f"{p[key]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


GENERATED = ("<!-- Generated by train/card.py from meta.json, eval.json and notes.md: edit notes.md "
             "and run it again rather than editing this file. -->")


def write_card(folder: Path, name: str | None = None) -> str:
    """README.md and samples.png of the checkpoint folder, titled `name` (default: the folder's
    name); returns a summary line."""
    folder = Path(folder)
    generator, meta = load_checkpoint(folder)
    cfg, t = generator.config, meta.get("train_config", {})
    evaluation = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
    H = generator.num_steps
    grid_steps = sorted({1, 2, 3, 4, H, 2 * H, 16, 64} if cfg.mapper.kind == "rtm" else {1, 2, 4, 8})
    sample_grid(folder, generator, grid_steps)
    params, change = meta["parameters"], meta.get("weight_change", {})
    loss = ("RS-IMLE's loss made offline: LPIPS-style distance on EfficientNet-Lite1 features "
            f"(weight {t.get('loss_perceptual')}) + {t.get('loss_pixel')} x pixel MSE (train/losses.py)"
            if t.get("loss_perceptual") else f"pixel MSE only (weight {t.get('loss_pixel')}), the loss ablation")
    rs = meta.get("rs_imle", {})
    lines = [
        front_matter(meta), GENERATED, "", f"# {name or folder.name}", "",
        f"An IMLE generator trained with RS-IMLE-style selection on {meta.get('num_images')} images "
        f"({meta.get('data_source')}), mapper: **{describe_mapper(cfg.mapper)}**. "
        + ("Trained in stages, each continuing from the last shipped weights (`--init-from`): the budget and "
           "lineage below, the runs in docs/EXPERIMENTS.md." if meta.get("lineage") else
           "One arm of the few-shot experiment in docs/EXPERIMENTS.md: every arm shares the decoder, data, seed, "
           "optimizer steps and loss, and differs only in the mapper." if "fewshot" in str(t.get("out")) else
           "One training run, the first stage of a series (later stages continue it with `--init-from`); "
           "the run is recorded in docs/EXPERIMENTS.md."), "",
        "## Model", "",
        f"- Mapper: {describe_mapper(cfg.mapper)}; {params['mapping'] / 1e6:.2f} M parameters.",
        f"- Decoder: {cfg.decoder.kind}, {cfg.decoder.img_resolution}x{cfg.decoder.img_resolution} RGB, "
        f"channel_base {cfg.decoder.channel_base}, channel_max {cfg.decoder.channel_max}; "
        f"{params['synthesis'] / 1e6:.2f} M parameters.",
        f"- z_dim = {cfg.mapper.z_dim}, w_dim = {cfg.mapper.w_dim}. Weights stored as {meta['storage_dtype']} "
        "(loaded as float32); EMA of the training weights.", "",
        "## Data", "",
        f"{meta.get('num_images')} images: {meta.get('data_source')}, `{t.get('data')}` "
        "(padded to square on white). `training_images.npz` in this folder holds them for the app's "
        "nearest-training-image check.", "",
        "## Training", "",
        f"`{training_command(meta, cfg)}`", "",
        f"- {meta.get('step'):,} optimizer steps of batch {t.get('batch_size')} in this stage ({meta.get('images_seen'):,} "
        f"images seen, {meta.get('epoch', 0):.0f} epochs), AdamW lr {t.get('lr')}, EMA {ema_text(t)}"
        + (f"; {meta.get('stages')} stages, {meta.get('total_steps'):,} steps in all (below)." if meta.get("lineage")
           else "."),
        f"- Loss: {loss}.",
        f"- Selection: pool {t.get('force_factor')} x N every {t.get('resample_every')} epochs, "
        f"{t.get('search_dim')}-d random projection; rejection radius eps = "
        + (f"{t.get('eps_nn_fraction')} x the median nearest-neighbour distance between training images = "
           if t.get("eps_nn_fraction") else "")
        + f"{rs.get('eps', float('nan')):.3f}, "
        + ("RS-IMLE's code's rule (each image drops its " f"{t.get('knn_ignore')} nearest samples within eps per 1,024)"
           if t.get("rejection") == "knn" else "every sample within eps of any image rejected")
        + f". Rejected pool samples per round, last rounds: {rs.get('rejected_last_rounds', 'n/a')}.",
        *diversity_lines(meta.get("seed_diversity")),
        f"- The arm learned: its weights moved {100 * change.get('mapping', float('nan')):.1f} % (mapper) and "
        f"{100 * change.get('synthesis', float('nan')):.1f} % (decoder) from "
        + ("the parent checkpoint's weights in this stage " if meta.get("lineage") else "their initialisation ")
        + "(relative L2 change; fp16 storage alone is ~0.03 %).",
        f"- Wall time {meta.get('wall_time_s', 0) / 60:.0f} minutes on a 2-core CPU"
        + (", one thread, seven runs side by side (docs/EXPERIMENTS.md)" if meta.get("argv") is None else
           f", {meta.get('threads')} thread(s) x {meta.get('world_size', 1)} process(es)")
        + (f"; {meta['cpu_time_s'] / 60:.0f} CPU-minutes of the training process (pauses and other work on the "
           f"machine do not count there)." if meta.get("cpu_time_s") else "."), "",
        "## Budget and lineage", "",
        *budget_lines(meta), "",
        *curve_lines(folder, meta.get("training_curve", [])),
        "## Samples", "",
        f"![samples]({SAMPLES_FILE})", "",
        f"Rows: seeds 0–7. Columns: the image after {', '.join(map(str, grid_steps))} refinement steps "
        f"(trained H = {H}).", "",
    ]
    if evaluation:
        kid = evaluation.get("kid_name", "kid")
        lines += ["## Metrics per number of refinement steps", "",
                  f"{evaluation['num_samples']} samples (seeds {evaluation['seeds']}) in {evaluation['per_step'][0].get('draws', 1)} "
                  f"disjoint draws (mean ± sd over draws) against the {evaluation['num_real']} training images; "
                  f"features: {evaluation['features']}. Memorisation: median distance from a sample to its nearest "
                  "training image over the median distance between neighbouring training images (1 = as far as the "
                  "images are from each other; near 0 = copies).", "",
                  "Distinct nearest: of seeds 0-99, how many distinct training images are nearest in pixel space "
                  "(what seeds drawn uniformly from the training set reach on average: "
                  f"{evaluation['per_step'][0].get('distinct_nearest_uniform', float('nan')):.1f}); pixel RMS: the "
                  "median distance (0-255) from those samples to their nearest training image, against "
                  f"{evaluation['per_step'][0].get('pixel_rms_data_nn_median', float('nan')):.1f} between "
                  "neighbouring training images. Where the evaluation drew several hundred seeds, the count "
                  "is also taken on each block of 100 (seeds 100-199, ...) and shown as their mean ± sd.", "",
                  "Coverage is read against a reference below 1: at these sample counts, new images drawn from the "
                  f"training images' own distribution cover {coverage_scale(evaluation):.2f} in expectation (Naeem et "
                  "al. 2020, `rtm_core.metrics.expected_coverage`). A model scores above that only by sitting closer "
                  "to its training images than new images of their kind would.", "",
                  "| steps h | FD-EffNet ↓ | KID-EffNet ↓ | precision ↑ | recall ↑ | density | coverage ↑ | memorisation "
                  "| distinct nearest | pixel RMS |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in evaluation["per_step"]:
            mark = " (trained H)" if p["steps"] == H else ""
            lines.append(f"| {p['steps']}{mark} | {fmt(p, evaluation['fd_name'], 1)} | {fmt(p, kid, 3)} | "
                         f"{fmt(p, 'precision')} | {fmt(p, 'recall')} | {fmt(p, 'density')} | {fmt(p, 'coverage')} | "
                         f"{p['memorisation_ratio']:.2f} | {distinct_text(p)} | "
                         f"{p.get('pixel_rms_nearest_median', float('nan')):.1f} |")
        tr = evaluation["trajectory"]
        moving = tr.get("moving_share", [])
        lines += ["", f"Trajectories over {tr['num_seeds']} seeds up to step {tr['steps'][-1]}: "
                  f"{100 * tr['diverged_share']:.1f} % diverged; share of seeds still moving (step displacement "
                  f"> 1 % of the first step's) at steps 8 / 16 / 32 / 64: "
                  + " / ".join(f"{100 * moving[s - 1]:.0f} %" for s in (8, 16, 32, 64) if s <= len(moving)) + ".", ""]
    notes = folder / NOTES_FILE
    if notes.is_file():   # what the numbers do not show, written by hand; kept when the card is made again
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    (steps, _, wall_s), res = budget_totals(meta), cfg.decoder.img_resolution
    lines += ["## Limitations", "",
              f"{wall_s / 60:.0f} minutes of a 2-core CPU ({steps:,} steps) at {res}x{res} on "
              f"{meta.get('num_images')} images: a few-shot model, "
              "and it can only make variations of its training images. FD-EffNet and KID-EffNet use "
              "EfficientNet-Lite0 features and are not comparable with published FID/KID numbers; with ~100 "
              "real images, FD is dominated by its small-sample bias (read KID and the k-NN metrics).", ""]
    (folder / "README.md").write_text("\n".join(lines))
    return f"README.md and {SAMPLES_FILE}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-card", "train.card"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the checkpoint folder whose README.md to write")
    folder = parser.parse_args(argv).folder
    if not (folder / "config.json").is_file():
        parser.exit(1, f"error: {folder} is not a checkpoint folder (no config.json)\n")
    print(f"wrote {folder}: {write_card(folder)}")


if __name__ == "__main__":
    main()
