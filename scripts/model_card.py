"""Write a checkpoint's model card (README.md) and sample grid from its meta.json and eval.json.

    python scripts/model_card.py checkpoints/noto-faces-rtm

The card states only what the files say: the training settings, budget, weight change and
RS-IMLE record from meta.json, the metrics from eval.json. Edit the generated text
afterwards if something needs saying.
"""

import json
import math
import sys
from pathlib import Path

from PIL import Image

from rtm_core import load_checkpoint, refinement_grid, to_pil

SAMPLES_FILE = "samples.png"


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


def training_command(meta: dict, cfg) -> str:
    t = meta.get("train_config", {})
    flags = [f"--preset cpu --data {t.get('data')}"]
    flags += [f"--mapper.{k.replace('_', '-')} {v}" for k, v in t.get("mapper", {}).items()]
    if t.get("loss_perceptual") == 0:
        flags.append(f"--loss-perceptual 0 --loss-pixel {t.get('loss_pixel')}")
    return "OMP_NUM_THREADS=1 python -m train.train " + " ".join(flags)


def fmt(p: dict, key: str, digits: int = 3) -> str:
    sd = p.get(f"{key}_sd")
    return f"{p[key]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
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
        f"# {folder.name}", "",
        f"An IMLE generator trained with RS-IMLE-style selection on {meta.get('num_images')} images "
        f"({meta.get('data_source')}), mapper: **{describe_mapper(cfg.mapper)}**. One arm of the few-shot "
        "experiment in docs/EXPERIMENTS.md: every arm shares the decoder, data, seed, optimizer steps and "
        "loss, and differs only in the mapper.", "",
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
        f"- {meta.get('step')} optimizer steps of batch {t.get('batch_size')} ({meta.get('images_seen')} images "
        f"seen, {meta.get('epoch', 0):.0f} epochs), AdamW lr {t.get('lr')}, EMA {t.get('ema_decay')}.",
        f"- Loss: {loss}.",
        f"- Selection: pool {t.get('force_factor')} x N every {t.get('resample_every')} epochs, "
        f"{t.get('search_dim')}-d random projection; rejection radius eps = {t.get('eps_nn_fraction')} x the median "
        f"nearest-neighbour distance between training images = {rs.get('eps', float('nan')):.3f}. "
        f"Rejected pool samples per round, last rounds: {rs.get('rejected_last_rounds', 'n/a')}.",
        f"- The arm learned: its weights moved {100 * change.get('mapping', float('nan')):.1f} % (mapper) and "
        f"{100 * change.get('synthesis', float('nan')):.1f} % (decoder) from their initialisation "
        "(relative L2 change; fp16 storage alone is ~0.03 %).",
        f"- Wall time {meta.get('wall_time_s', 0) / 60:.0f} minutes on a 2-core CPU, one thread, seven runs "
        "side by side (docs/EXPERIMENTS.md).", "",
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
                  "| steps h | FD-EffNet ↓ | KID-EffNet ↓ | precision ↑ | recall ↑ | density | coverage ↑ | memorisation |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in evaluation["per_step"]:
            mark = " (trained H)" if p["steps"] == H else ""
            lines.append(f"| {p['steps']}{mark} | {fmt(p, evaluation['fd_name'], 1)} | {fmt(p, kid, 3)} | "
                         f"{fmt(p, 'precision')} | {fmt(p, 'recall')} | {fmt(p, 'density')} | {fmt(p, 'coverage')} | "
                         f"{p['memorisation_ratio']:.2f} |")
        tr = evaluation["trajectory"]
        moving = tr.get("moving_share", [])
        lines += ["", f"Trajectories over {tr['num_seeds']} seeds up to step {tr['steps'][-1]}: "
                  f"{100 * tr['diverged_share']:.1f} % diverged; share of seeds still moving (step displacement "
                  f"> 1 % of the first step's) at steps 8 / 16 / 32 / 64: "
                  + " / ".join(f"{100 * moving[s - 1]:.0f} %" for s in (8, 16, 32, 64) if s <= len(moving)) + ".", ""]
    lines += ["## Limitations", "",
              "About an hour of one CPU thread at 32x32 on ~100 images: a few-shot model, far from converged, "
              "and it can only make variations of its training emoji. FD-EffNet and KID-EffNet use "
              "EfficientNet-Lite0 features and are not comparable with published FID/KID numbers; with ~100 "
              "real images, FD is dominated by its small-sample bias (read KID and the k-NN metrics).", ""]
    (folder / "README.md").write_text("\n".join(lines))
    print(f"wrote {folder / 'README.md'} and {folder / SAMPLES_FILE}")


if __name__ == "__main__":
    main()
