"""Write a checkpoint's model card (README.md) and sample grid from its meta.json and eval.json.

    python scripts/model_card.py checkpoints/noto-emoji-rtm

The card states only what the files say: the training settings and budget from meta.json,
the metrics from eval.json. Edit the generated text afterwards if something needs saying.
"""

import json
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtm_core import load_checkpoint, refinement_grid, to_pil  # noqa: E402

SAMPLES_FILE = "samples.png"


def sample_grid(folder: Path, generator, steps: list[int]) -> None:
    """Rows: seeds 0..7; columns: the image after each number of steps."""
    grid = refinement_grid(generator, range(8), steps)
    image = to_pil(grid)
    image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST).save(folder / SAMPLES_FILE)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
    generator, meta = load_checkpoint(folder)
    cfg, train_cfg = generator.config, meta.get("train_config", {})
    evaluation = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
    H = generator.num_steps
    grid_steps = sorted({1, 2, 4, H, 2 * H} | ({16} if cfg.mapper.kind == "rtm" else set()))
    sample_grid(folder, generator, grid_steps)
    mapper = (f"RTM (recursive token mapper): T = {cfg.mapper.num_tokens} tokens of width {cfg.mapper.token_dim}, "
              f"H = {cfg.mapper.num_steps} outer steps x L = {cfg.mapper.num_cycles} inner cycles, "
              f"{cfg.mapper.block_layers} mixer layer(s) per shared block" if cfg.mapper.kind == "rtm" else
              f"one-pass MLP (StyleGAN2 mapping network): {cfg.mapper.mlp_layers} x {cfg.mapper.mlp_width}, "
              f"lr multiplier {cfg.mapper.lr_multiplier}")
    params = meta["parameters"]
    lines = [
        f"# {folder.name}", "",
        f"An RS-IMLE generator trained on Noto Color Emoji with the **{cfg.mapper.kind.upper()}** mapper. "
        "It ships with RTM Explorer so that `python app.py` opens on a trained model; "
        "`noto-emoji-rtm` and `noto-emoji-mlp` differ only in the mapper (docs/EXPERIMENTS.md).", "",
        "## Model", "",
        f"- Mapper: {mapper}; {params['mapping'] / 1e6:.2f} M parameters.",
        f"- Decoder: {cfg.decoder.kind}, {cfg.decoder.img_resolution}x{cfg.decoder.img_resolution} RGB, "
        f"channel_base {cfg.decoder.channel_base}, channel_max {cfg.decoder.channel_max}; "
        f"{params['synthesis'] / 1e6:.2f} M parameters.",
        f"- z_dim = {cfg.mapper.z_dim}, w_dim = {cfg.mapper.w_dim}. Weights stored as {meta['storage_dtype']} "
        "(loaded as float32); EMA of the training weights.", "",
        "## Data", "",
        f"{meta.get('num_images')} images: {meta.get('data_source')}, prepared with "
        f"`python -m train.data noto-emoji --resolution {cfg.decoder.img_resolution} --out {meta.get('data')}` "
        "(all glyphs, padded to square on white). The emoji art is Apache-2.0 (the font itself OFL-1.1); "
        "`training_images.npz` in this folder holds those images for the app's nearest-neighbour check.", "",
        "## Training", "",
        f"`python -m train.train --preset cpu --data {meta.get('data')} --mapper {cfg.mapper.kind} "
        f"--max-steps {train_cfg.get('max_steps')} --max-minutes 0`", "",
        f"- {meta.get('step')} optimizer steps of batch {train_cfg.get('batch_size')} "
        f"({meta.get('images_seen')} images seen, {meta.get('epoch', 0):.1f} epochs), "
        f"lr {train_cfg.get('lr')}, EMA {train_cfg.get('ema_decay')}.",
        f"- RS-IMLE: pool {train_cfg.get('force_factor')} x N re-selected every {train_cfg.get('resample_every')} "
        f"epochs, eps {train_cfg.get('eps')}, {train_cfg.get('search_dim')}-d random projection.",
        f"- Wall time {meta.get('wall_time_s', 0) / 60:.0f} minutes on a 2-core CPU"
        " (two runs side by side, one thread each; see docs/EXPERIMENTS.md).",
        f"- Final training loss (pixel MSE in [-1, 1]): {meta.get('final_loss', float('nan')):.4f}.", "",
        "## Samples", "",
        f"![samples]({SAMPLES_FILE})", "",
        f"Rows: seeds 0–7. Columns: the image after {', '.join(map(str, grid_steps))} refinement steps "
        f"(trained H = {H}).", "",
    ]
    if evaluation:
        lines += ["## Metrics per number of refinement steps", "",
                  f"{evaluation['num_samples']} samples (seeds {evaluation['seeds']}) against "
                  f"{evaluation['num_real']} real images; features: {evaluation['features']}.", "",
                  "| steps h | FD-EffNet ↓ | KID ↓ | precision ↑ | recall ↑ | density | coverage ↑ |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in evaluation["per_step"]:
            mark = " (trained H)" if p["steps"] == H else ""
            lines.append(f"| {p['steps']}{mark} | {p['fd_effnet']:.3f} | {p['kid']:.4f} | {p['precision']:.3f} | "
                         f"{p['recall']:.3f} | {p['density']:.3f} | {p['coverage']:.3f} |")
        t = evaluation["trajectory"]
        lines += ["", f"Trajectories over {t['num_seeds']} seeds: {100 * t['diverged_share']:.1f}% diverged, "
                  f"{100 * t['stalled_share']:.1f}% stopped moving by step {t['steps'][-1]}.", ""]
    lines += ["## Limitations", "",
              "Trained for under two hours on a CPU at 32x32: expect blurry, emoji-like blobs rather than "
              "crisp glyphs. FD-EffNet is not FID and is not comparable with published FID numbers.", ""]
    (folder / "README.md").write_text("\n".join(lines))
    print(f"wrote {folder / 'README.md'} and {folder / SAMPLES_FILE}")


if __name__ == "__main__":
    main()
