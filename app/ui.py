"""Layout and wiring of the Gradio app. No tensor code: everything goes through the service."""

from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path
from typing import Optional

import gradio as gr
import plotly
import plotly.graph_objects as go

from .service import MAX_SEED, MAX_STEPS, TrajectoryService, gif_bytes

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"  # served locally: no CDN
GIF_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-gifs"

INTRO = """# RTM Explorer
Watch **recursive latent refinement** at work. RTM (the Recursive Token Mapper, arXiv 2605.15309) turns a
seed's noise into latent tokens and refines them with one shared block, step after step; after every step the
style *w* is read out and decoded. Pick a seed, press **Generate**, then scrub, play, or hover the map.
Everything after Generate runs in your browser."""


def shown_as_error(fn):
    """Bad input raises ValueError in the service; show its message in the page instead of failing."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except ValueError as e:
            raise gr.Error(str(e)) from None
    return wrapper


def viewer(elem_id: str) -> gr.HTML:
    """The refinement viewer: image, slider, play, ±1, filmstrip, trajectory map, displacement chart."""
    gr.set_static_paths([PLOTLY_JS.parent])
    return gr.HTML(
        value=None,
        html_template='<div class="rtm-root" data-step=""></div>',
        css_template=(ASSETS / "viewer.css").read_text(),
        js_on_load=(ASSETS / "viewer.js").read_text(),
        head=f'<script src="/gradio_api/file={PLOTLY_JS}"></script>',
        elem_id=elem_id,
        apply_default_css=False,
    )


def eval_figure(evaluation: Optional[dict], trained_steps: int) -> Optional[go.Figure]:
    """k-NN precision, recall, density, coverage (and FD) against the number of steps, from the
    checkpoint's eval.json; error bars are the sd over draws where eval.json has them."""
    if not evaluation or "per_step" not in evaluation:
        return None
    rows = evaluation["per_step"]
    steps = [r["steps"] for r in rows]
    fig = go.Figure()
    for key, name in (("precision", "precision"), ("recall", "recall"), ("density", "density"), ("coverage", "coverage")):
        if all(key in r for r in rows):
            sd = [r.get(f"{key}_sd") for r in rows]
            fig.add_scatter(x=steps, y=[r[key] for r in rows], mode="lines+markers", name=name,
                            error_y=dict(type="data", array=sd, visible=True) if all(v is not None for v in sd) else None)
    for key, name in (("fd_effnet", "FD-EffNet"), ("fid", "FID")):
        if all(key in r for r in rows):
            fig.add_scatter(x=steps, y=[r[key] for r in rows], mode="lines+markers", name=name, yaxis="y2")
    fig.add_vline(x=trained_steps, line_dash="dot", annotation_text="trained H")
    fig.update_layout(height=300, margin=dict(l=40, r=40, t=30, b=40), xaxis_title="refinement steps",
                      yaxis=dict(title="k-NN precision, recall, density, coverage", rangemode="tozero"),
                      yaxis2=dict(title="Fréchet distance", overlaying="y", side="right", showgrid=False))
    return fig


def build_demo(service: TrajectoryService, default_checkpoint: Optional[str] = None) -> gr.Blocks:
    names = service.names()
    if not names:
        raise FileNotFoundError(f"no checkpoints under {service.root}; train one (docs/TRAINING.md)")
    default = default_checkpoint if default_checkpoint in names else names[0]
    default_steps = service.model(default).trained_steps
    other = next((n for n in names if n != default), default)

    @shown_as_error
    def run(name, seed, steps):
        return service.payload(service.trajectory(name, seed, steps))

    @shown_as_error
    def on_checkpoint(name):
        model = service.model(name)
        figure = eval_figure(model.eval, model.trained_steps)
        return gr.update(value=model.trained_steps), gr.update(value=figure, visible=figure is not None), _card(model)

    @shown_as_error
    def export_gif(name, seed, steps):
        result = service.trajectory(name, seed, steps)
        GIF_DIR.mkdir(exist_ok=True)
        path = GIF_DIR / f"{name}-seed{result.seed}-{result.num_steps}steps.gif"
        path.write_bytes(gif_bytes(result))
        return str(path)

    with gr.Blocks(title="RTM Explorer") as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            checkpoint = gr.Dropdown(names, value=default, label="checkpoint", scale=2)
            seed = gr.Number(value=42, precision=0, minimum=0, maximum=MAX_SEED, label="seed", scale=1)
            dice = gr.Button("🎲 random seed", scale=0)
            steps = gr.Slider(1, MAX_STEPS, value=default_steps, step=1, label="refinement steps", scale=2)
            generate = gr.Button("Generate", variant="primary", scale=0)
        card = gr.Markdown(_card(service.model(default)))
        view = viewer("rtm-viewer")
        with gr.Row():
            figure = eval_figure(service.model(default).eval, default_steps)
            curves = gr.Plot(figure, label="metrics vs refinement steps (eval.json)", visible=figure is not None)
            with gr.Column():
                gif_button = gr.Button("Export the refinement as GIF")
                gif_file = gr.File(label="GIF", interactive=False)
        with gr.Accordion("Compare: the same seed through another checkpoint or step count", open=False):
            with gr.Row():
                checkpoint_b = gr.Dropdown(names, value=other, label="checkpoint B")
                steps_b = gr.Slider(1, MAX_STEPS, value=service.trained_steps(other), step=1,
                                    label="refinement steps B")
                compare = gr.Button("Compare")
            view_b = viewer("rtm-viewer-b")

        generate.click(run, [checkpoint, seed, steps], view, api_name="trajectory")
        seed.submit(run, [checkpoint, seed, steps], view, api_name=False)
        dice.click(lambda: random.randint(0, 999_999), None, seed, api_name=False).then(
            run, [checkpoint, seed, steps], view, api_name=False)
        checkpoint.change(on_checkpoint, checkpoint, [steps, curves, card], api_name=False).then(
            run, [checkpoint, seed, steps], view, api_name=False)
        compare.click(run, [checkpoint_b, seed, steps_b], view_b, api_name="compare")
        gif_button.click(export_gif, [checkpoint, seed, steps], gif_file, api_name="gif")
        demo.load(run, [checkpoint, seed, steps], view, api_name=False)
    return demo


def _card(model) -> str:
    meta, cfg = model.meta, model.generator.config
    m = cfg.mapper
    if m.kind == "rtm":
        mapper = f"RTM, H = {m.num_steps}, L = {m.num_cycles}" + (" (recursion off)" if m.num_steps == 1 else "")
    else:
        recipe = "StyleGAN2 recipe" if m.mlp_layer == "equalized" and m.lr_multiplier != 1 else "RS-IMLE baseline"
        mapper = f"one-pass MLP ({recipe})"
    trained = f"trained {meta['step']} steps on {meta.get('data_source') or meta.get('data')}" if "step" in meta \
        else "untrained weights"
    return (f"**{model.name}** — {mapper}; {cfg.decoder.kind} decoder, "
            f"{cfg.decoder.img_resolution}×{cfg.decoder.img_resolution}; {trained}.")
