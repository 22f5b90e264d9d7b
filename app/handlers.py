"""What each event of the page does, on the service: the functions build_demo wires to the
page's events and the API's endpoints. No layout here; no tensor code (that is the service's).
Bad input raises ValueError in the service: `shown_as_error` shows its message in the page and
answers the REST API with a 422."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs

import gradio as gr
import plotly.graph_objects as go

from .encode import gif_bytes, image_data_uri, plural, write_by_hash
from .http import mark_refused
from .inputs import GRID_SEEDS, MAX_STEPS, grid_seeds, parse_seed, parse_steps, preview, whole_number
from .service import TrajectoryService
from .static import GIF_DIR, PLOTLY_URL, asset_url, gif_url, grid_url, prune_gifs

log = logging.getLogger("rtm_explorer")
RESTORED = 16   # restore()'s outputs, in build_demo's order: the main view (8), compare (5), grid (3)


def shown_as_error(fn):
    """Bad input raises ValueError in the service: show its message in the page (one log line,
    no traceback) and answer the REST API with 422 instead of failing."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except ValueError as e:
            mark_refused()
            log.warning("refused %s: %s", fn.__name__, preview(str(e), 300))
            raise gr.Error(str(e), print_exception=False) from None
    return wrapper


def typed_steps(steps):
    """A steps box left empty is an error that says so, not a silent run at the trained H."""
    if steps is None or steps == "":
        raise ValueError(f"the refinement steps box is empty: type a whole number from 1 to {MAX_STEPS} "
                         "(a checkpoint opens at its trained H)")
    return steps


def eval_figure(evaluation: Optional[dict], trained_steps: int) -> Optional[dict]:
    """k-NN precision, recall, density, coverage (and FD) against the number of steps, from the
    checkpoint's eval.json, as plotly JSON; error bars are the sd over draws where eval.json has them."""
    if not evaluation or "per_step" not in evaluation:
        return None
    rows = evaluation["per_step"]
    steps = [r["steps"] for r in rows]
    fig = go.Figure()
    for key in ("precision", "recall", "density", "coverage"):
        if all(key in r for r in rows):
            sd = [r.get(f"{key}_sd") for r in rows]
            fig.add_scatter(x=steps, y=[r[key] for r in rows], mode="lines+markers", name=key,
                            error_y=dict(type="data", array=sd, visible=True) if all(v is not None for v in sd) else None)
    for key, name in (("fd_effnet", "FD-EffNet (right axis)"), ("fid", "FID (right axis)")):
        if all(key in r for r in rows):
            fig.add_scatter(x=steps, y=[r[key] for r in rows], mode="lines+markers", name=name, yaxis="y2",
                            line=dict(dash="dash"))
    # "trained H" above the plot, never on the curves (on a phone they fill the whole height).
    fig.add_vline(x=trained_steps, line_dash="dot", annotation_text="trained H", annotation_position="top",
                  annotation_yref="paper", annotation_y=1.0, annotation_yanchor="bottom")
    fig.update_layout(height=340, margin=dict(l=50, r=60, t=48, b=40), xaxis_title="refinement steps",
                      title=dict(text="Metrics per refinement step, against the training images", font=dict(size=13)),
                      legend=dict(orientation="h", y=-0.25, x=0),  # below the plot: never over an axis
                      yaxis=dict(title="k-NN metric (see legend)", rangemode="tozero"),
                      yaxis2=dict(title="Fréchet distance (lower is better)", overlaying="y", side="right",
                                  showgrid=False, rangemode="tozero"))
    return json.loads(fig.to_json())


def eval_takeaway(evaluation: Optional[dict], trained_steps: int) -> str:
    """The metric chart in one or two sentences, from eval.json: the scores at the trained H, what
    they mean, and from which step on they stop changing."""
    rows = (evaluation or {}).get("per_step") or []
    keys = [k for k in ("precision", "recall", "density", "coverage") if rows and all(k in r for r in rows)]
    at_h = next((r for r in rows if r["steps"] == trained_steps), None)
    if not keys or at_h is None:
        return ""
    said = ", ".join(f"{k} {at_h[k]:.2f}" for k in keys)
    text = f"**In short:** at the trained H = {trained_steps}, {said}."
    if "precision" in keys and "recall" in keys:
        text += (f" About {at_h['precision']:.0%} of the samples look like real images, and they reach about "
                 f"{at_h['recall']:.0%} of the real images.")
    if "density" in keys and at_h["density"] > 1:
        text += " Density above 1: samples sit where real images are densest (safe, typical faces)."
    settled = next((r["steps"] for r in sorted(rows, key=lambda r: r["steps"]) if r["steps"] <= trained_steps
                    and all(abs(r[k] - at_h[k]) <= 0.05 for k in keys)), None)
    if settled is not None and settled < trained_steps:
        text += f" From step {settled} on, every score is within 0.05 of its value at H: later steps refine detail."
    return text


class Handlers:
    """The page's events on one service; `default` is the checkpoint the page opens on. Each
    method's parameters are its event's inputs, in order (the API documents them by these names)."""

    def __init__(self, service: TrajectoryService, default: str):
        self.service, self.default = service, default
        self.default_model = service.model(default)

    def page_urls(self, name: str) -> dict:
        return {"assets_url": asset_url(self.service.model(name).assets_file), "plotly_url": PLOTLY_URL}

    def payload(self, name, seed, steps) -> dict:
        result = self.service.trajectory(name, seed, steps)
        return {**self.service.payload(result), **self.page_urls(result.checkpoint)}

    @shown_as_error
    def run(self, name, seed, steps):
        return self.payload(name, seed, typed_steps(steps))

    @shown_as_error
    def follow(self, open_, pinned, name, seed, steps):
        """Once open, the compare view follows the main seed, unless pinned."""
        return self.payload(name, seed, typed_steps(steps)) if open_ and not pinned else gr.update()

    @shown_as_error
    def grid(self, name, first, count, steps):
        seeds = grid_seeds(first, count)
        payload_, sprite = self.service.grid_payload(self.service.trajectories(name, seeds, typed_steps(steps)))
        return {**payload_, "sprite_url": grid_url(sprite), **self.page_urls(payload_["checkpoint"])}

    @shown_as_error
    def intervene(self, name, seed, steps, kind, token, step, donor_seed):
        original, changed, what = self.service.intervene(name, seed, typed_steps(steps), kind, token, step, donor_seed)
        return {**self.service.intervention_payload(original, changed, what), **self.page_urls(original.checkpoint)}

    def on_checkpoint(self, name, last_good):
        """A checkpoint chosen: its trained H, curves and card. A name that is no checkpoint (typed
        into the box) is one warning, and the box goes back to the last good one: no error badges
        over the form, which keeps working."""
        try:
            model = self.service.model(name)
        except ValueError as e:
            log.warning("refused checkpoint: %s", preview(str(e), 300))
            gr.Warning(str(e))
            return gr.update(value=last_good), last_good, gr.update(), gr.update(), gr.update(), gr.update()
        return (gr.update(), model.name, gr.update(value=model.trained_steps), eval_figure(model.eval, model.trained_steps),
                eval_takeaway(model.eval, model.trained_steps), card_text(model))

    def restore(self, search):
        """The page's first call: the view a link asks for (?checkpoint=&seed=&steps=, and
        compare=CHECKPOINT:STEPS, grid=FIRST:COUNT when they were open), or nothing to change. A
        link with bad values opens the default view, and the card says why."""
        query = {k: v[0] for k, v in parse_qs(str(search or "").lstrip("?")[:512]).items()}
        unchanged = (gr.update(),) * RESTORED
        if not {"checkpoint", "seed", "steps", "compare", "grid"} & query.keys():
            return unchanged
        try:
            model = self.service.model(query.get("checkpoint", self.default))
            result = self.payload(model.name, query.get("seed", 42), query.get("steps", model.trained_steps))
            out = [gr.update(value=model.name), model.name, result["seed"], result["num_steps"],
                   eval_figure(model.eval, model.trained_steps), eval_takeaway(model.eval, model.trained_steps),
                   card_text(model), result] + [gr.update()] * 8
            if "compare" in query:
                name_b, _, steps_b_ = query["compare"].partition(":")
                out[8:13] = [gr.update(visible=True), True, gr.update(value=name_b), int(parse_steps(steps_b_)),
                             self.payload(name_b, result["seed"], steps_b_)]
            if "grid" in query:
                first, _, count = query["grid"].partition(":")
                out[13:16] = [int(parse_seed(first)), int(whole_number(count, "number of seeds", *GRID_SEEDS)),
                              self.grid(model.name, first, count, result["num_steps"])]
            return tuple(out)
        except (ValueError, gr.Error) as e:   # said in the card: an unqueued call (this one) shows no toast
            log.warning("refused link: %s", preview(str(e), 300))
            said = f"{card_text(self.default_model)}\n\n⚠️ this link's view cannot be shown: {code(e)}"
            return unchanged[:6] + (said,) + unchanged[7:]

    def steps_of(self, name):
        """Compare's checkpoint B comes at its own trained H; a bad name is one warning."""
        try:
            return self.service.trained_steps(name)
        except ValueError as e:
            log.warning("refused checkpoint B: %s", preview(str(e), 300))
            gr.Warning(str(e))
            return gr.update()

    @shown_as_error
    def beyond(self, name, seed, steps):
        return self.service.beyond_payload(name, seed, typed_steps(steps))

    @shown_as_error
    def export_gif(self, name, seed, steps):
        """The GIF under /rtm-static/gifs/ (named by its content: no server path in the answer)."""
        result = self.service.trajectory(name, seed, typed_steps(steps))
        prune_gifs(GIF_DIR)
        path = write_by_hash(GIF_DIR, gif_bytes(result.frames), ".gif")
        filename = f"{result.checkpoint}-seed{result.seed}-{result.num_steps}steps.gif"
        return {"items": [{"src": gif_url(path), "caption": f"seed {result.seed}, {plural(result.num_steps, 'step')}"}],
                "download": {"url": gif_url(path), "filename": filename}}

    @shown_as_error
    def walk(self, name, seed_a, seed_b, count):
        frames = self.service.seed_walk(name, seed_a, seed_b, count)
        last = len(frames) - 1
        return {"items": [{"src": image_data_uri(f),
                           "caption": f"seed {int(float(seed_a))}" if k == 0 else f"seed {int(float(seed_b))}"
                           if k == last else f"{k}/{last} of the way"} for k, f in enumerate(frames)],
                "download": None}


def card_text(model) -> str:
    meta, cfg = model.meta, model.generator.config
    m = cfg.mapper
    if m.kind == "rtm":
        mapper = f"RTM, H = {m.num_steps}, L = {m.num_cycles}" + (" (recursion off)" if m.num_steps == 1 else "")
    else:
        recipe = "StyleGAN2 recipe" if m.mlp_layer == "equalized" and m.lr_multiplier != 1 else "RS-IMLE baseline"
        mapper = f"one-pass MLP ({recipe})"
    # No closing full stop: Gradio draws a code span as an inline block, so on a phone the stop
    # after a long data source wrapped onto a line of its own.
    card = (f"{code(model.name)} — {mapper}; {cfg.decoder.kind} decoder, "
            f"{cfg.decoder.img_resolution}×{cfg.decoder.img_resolution}; {training_line(meta)}")
    return card + "".join(f"\n\n⚠️ {code(w)}" for w in model.warnings)


def training_line(meta: dict) -> str:
    """How the weights were trained, from meta.json: 'trained 17,843 steps in 4 stages on …', or,
    for a stage on other data than the model it started from, 'fine-tuned 900 steps on … from …'."""
    if "step" not in meta:
        return "untrained weights"
    source, lineage = code(meta.get("data_source") or meta.get("data")), meta.get("lineage") or []
    parent = lineage[-1] if lineage else {}
    if parent and isinstance(meta["step"], int) and Path(str(parent.get("data"))).name != Path(str(meta.get("data"))).name:
        before = sum(s.get("step") or 0 for s in lineage if isinstance(s.get("step"), int))
        return (f"fine-tuned {meta['step']:,} steps on {source} from {code(Path(str(parent.get('checkpoint'))).name)} "
                f"({before:,} steps before)")
    step = meta.get("total_steps", meta.get("step"))   # a model trained in stages: all of them
    stages = meta.get("stages")
    in_stages = f" in {stages} stages" if isinstance(stages, int) and stages > 1 else ""
    return f"trained {f'{step:,}' if isinstance(step, int) else code(step)} steps{in_stages} on {source}"


def code(text: str) -> str:
    """gr.Markdown renders markup: text from files (names, data sources, warnings) goes in as a code span."""
    return "`" + str(text).replace("`", "'").replace("\n", " ")[:300] + "`"
