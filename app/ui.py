"""Layout and wiring of the Gradio app. No tensor code: everything goes through the service."""

from __future__ import annotations

import functools
import json
import logging
import random
import tempfile
from urllib.parse import parse_qs
from pathlib import Path
from typing import Optional

import gradio as gr
import plotly
import plotly.graph_objects as go

from .http import MIDDLEWARE, mark_refused, serve_static, static_url
from .encode import ASSETS_DIR, GRID_DIR, gif_bytes, image_data_uri, plural, prune, write_by_hash
from .inputs import GRID_SEEDS, MAX_STEPS, UI_MAX_SEED, WALK_FRAMES, grid_seeds, parse_seed, parse_steps, preview, \
    whole_number
from .service import TrajectoryService

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"  # served locally: no CDN
GIF_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-gifs"
GIF_KEEP, GIF_MAX_AGE_S = 32, 3600   # exports are downloads: keep the newest few, for an hour
log = logging.getLogger("rtm_explorer")

INTRO = """# RTM Explorer
Watch **recursive latent refinement** at work. RTM (the Recursive Token Mapper, arXiv 2605.15309) turns a
seed's noise into latent tokens and refines them with one shared block, step after step; after every step the
style *w* is read out and decoded. Pick a seed, press **Generate**, then scrub, play, or hover the map.
Everything after Generate runs in your browser."""

METRICS_NOTE = """<small>Against the training set, on EfficientNet-Lite0 features (docs/EVALUATION.md):
**precision** — the share of samples that fall inside the real images' k-NN balls (fidelity);
**recall** — the share of real images inside the samples' balls (diversity);
**density** — precision counting how many balls a sample falls in (about 1 when samples look like the data);
**coverage** — the share of real images with a sample inside their own ball;
**FD-EffNet** — Fréchet distance of the feature statistics, lower is better. Error bars: sd over draws.</small>"""

# One plotly.js for the whole page (the viewers and the metric curves share it), loaded by the
# viewer after its first frame is on screen. No gr.Plot: its own bundled copy would load beside
# it and race for window.Plotly.
PLOTLY_URL = static_url("plotly", PLOTLY_JS.name)
PENDING_JS = """() => { const b = document.querySelector('#rtm-generate');
  if (b) { b.textContent = 'Generating…'; b.setAttribute('aria-busy', 'true'); } }"""
DONE_JS = """() => { const b = document.querySelector('#rtm-generate');
  if (b) { b.textContent = 'Generate'; b.removeAttribute('aria-busy'); } }"""
# The Generate button and Gradio's footer links in colours that pass WCAG AA (4.5:1) in both
# themes: the theme's orange under white text measured 2.8:1 (light) and 3.56:1 (dark), the
# footer's links 1.91:1. Then the stylesheet of every gr.HTML on the page (app/assets/viewer.css;
# its rules are all under .rtm-* classes), once for the page rather than in each component's config.
CONTRAST_CSS = """#rtm-generate { background: #c2410c !important; border-color: #c2410c !important; color: #fff !important; }
#rtm-generate:hover { background: #9a3412 !important; border-color: #9a3412 !important; }
footer, footer a, footer button, footer span, footer div { color: var(--body-text-color) !important; opacity: 1 !important; }
body:not(:has(#rtm-eval .js-plotly-plot)) #rtm-metrics-note { visibility: hidden; }
"""
# On a phone the checkpoint gets a row of its own (a name like noto-faces-rtm-64 is cut short
# in half a row), then the seed, the dice, the steps and Generate sit two to a row, so that the
# image starts on the first screen, a thumb's reach below Generate.
PHONE_CSS = """@media (max-width: 640px) {
  #rtm-controls { flex-wrap: wrap !important; gap: 8px !important; }
  #rtm-controls > * { flex: 1 1 40% !important; min-width: 0 !important; }
  #rtm-controls > #rtm-checkpoint { flex-basis: 100% !important; }
  #rtm-controls > button { align-self: flex-end; max-height: 56px; }
  #rtm-intro p { font-size: 13px; line-height: 1.4; }
}
"""
PAGE_CSS = CONTRAST_CSS + PHONE_CSS + (ASSETS / "viewer.css").read_text()
LAUNCH_KWARGS = dict(app_kwargs={"middleware": MIDDLEWARE}, css=PAGE_CSS)


def on_screen_js(count: int) -> str:
    """Browser code run before an event: the first `count` of (checkpoint, seed, steps) of the
    trajectory on screen (the viewer's data attributes) replace the first `count` inputs, so a
    GIF or walk starts from what the user sees even if the boxes were edited since."""
    return f"""(...args) => {{ const r = document.querySelector('#rtm-viewer .rtm-root');
  if (!r || !r.dataset.seed) return args;
  const shown = [r.dataset.checkpoint, Number(r.dataset.seed), Number(r.dataset.steps)];
  return shown.slice(0, {count}).concat(args.slice({count})); }}"""


def asset_url(path: Path) -> str:
    """A checkpoint's map assets (named by their content's hash), without the server's folder."""
    return static_url("assets", path.name)


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


def grid_url(path: Path) -> str:
    """A grid's sprite (named by its content's hash), without the server's folder."""
    return static_url("grids", path.name)


# The browser code of each kind of gr.HTML on the page: files of app/assets/, in order.
SCRIPTS = {"viewer": ("theme.js", "common.js", "explain.js", "map.js", "intervention.js", "viewer.js"),
           "grid": ("theme.js", "common.js", "grid.js"), "figures": ("figures.js",), "curves": ("theme.js", "curves.js")}
SCRIPT_DIR = Path(tempfile.gettempdir()) / "rtm-explorer-scripts"


@functools.lru_cache(maxsize=1)
def page_script_url() -> str:
    """One file, named by its content, that defines window.rtmExplorer[kind](element, trigger,
    props, server, upload, watch) for every kind of SCRIPTS: its files' code as the body of a
    function of the names gr.HTML gives js_on_load, so it runs as it would inline. Served once
    per page (and cached) instead of riding in each component's config: Gradio copies every
    component's config into each new session and scans js_on_load on every attribute lookup
    it misses, ~10 ms of the server's time per new visitor with the code inline."""
    parts = ["window.rtmExplorer = window.rtmExplorer || {};"]
    for kind, files in SCRIPTS.items():
        body = "\n".join((ASSETS / name).read_text() for name in files)
        parts.append(f"window.rtmExplorer[{json.dumps(kind)}] = function (element, trigger, props, server, upload, "
                     f"watch) {{\n{body}\n}};")
    path = write_by_hash(SCRIPT_DIR, "\n".join(parts).encode(), ".js")
    return static_url("scripts", path.name)


def _html(elem_id: str, kind: str, template: str, value=None) -> gr.HTML:
    """A gr.HTML component whose browser code is SCRIPTS[kind]: the page's script file, loaded
    once through `head` (Gradio awaits it before js_on_load), then a one-line call into it.
    The stylesheet is the page's (LAUNCH_KWARGS)."""
    return gr.HTML(value=value, html_template=template, head=f'<script src="{page_script_url()}"></script>',
                   js_on_load=f"return window.rtmExplorer[{json.dumps(kind)}](element, trigger, props, server, "
                              "upload, watch);", elem_id=elem_id, apply_default_css=False)


def viewer(elem_id: str, value: Optional[dict] = None) -> gr.HTML:
    """The refinement viewer: image, slider, play, ±1, change maps, filmstrip, trajectory map."""
    return _html(elem_id, "viewer", '<div class="rtm-root" data-step=""></div>', value)


def figures(elem_id: str) -> gr.HTML:
    """Pictures with captions and a download link (app/assets/figures.js): the walk, the GIF."""
    return _html(elem_id, "figures", '<div class="rtm-figures"></div>')


def gif_url(path: Path) -> str:
    return static_url("gifs", path.name)


def grid_view(elem_id: str) -> gr.HTML:
    """Many seeds under one slider, their paths on one map (app/assets/grid.js)."""
    return _html(elem_id, "grid", '<div class="rtm-groot" data-step=""></div>')


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


def typed_steps(steps):
    """A steps box left empty is an error that says so, not a silent run at the trained H."""
    if steps is None or steps == "":
        raise ValueError(f"the refinement steps box is empty: type a whole number from 1 to {MAX_STEPS} "
                         "(a checkpoint opens at its trained H)")
    return steps


def prune_gifs(folder: Path, keep: int = GIF_KEEP, max_age_s: float = GIF_MAX_AGE_S) -> None:
    prune(folder, "*.gif", keep, max_age_s)


def whole_number_box(value: int, **kwargs) -> gr.Number:
    """A number box that the API page documents as an integer. It does not round what is typed
    (precision=0 would turn 3.5 into 4 behind the user's back): the service checks it and says
    so. (An instance's methods, not a subclass: Gradio writes a .pyi stub beside the module of
    every component subclass.)"""
    box = gr.Number(value=value, **kwargs)
    box.api_info = lambda: {"type": "integer"}
    box.example_payload = box.example_value = lambda: int(value)
    return box


# The view a link asks for (?checkpoint=…&seed=…&steps=…; the viewer writes them as it goes):
# read in the browser, handed to restore() on the page's first call.
READ_URL_JS = """(...args) => [window.location.search.slice(0, 512)]"""


# Every file the page fetches by URL, in one place: route -> (folder, the names it may serve,
# content type). Files made at run time are named by their content's hash (24 hex digits).
HASHED = r"[0-9a-f]{24}"
STATIC_ROUTES = {"plotly": (PLOTLY_JS.parent, r"plotly\.min\.js", "text/javascript"),
                 "scripts": (SCRIPT_DIR, rf"{HASHED}\.js", "text/javascript"),
                 "assets": (ASSETS_DIR, rf"{HASHED}\.json", "application/json"),
                 "grids": (GRID_DIR, rf"{HASHED}\.webp", "image/webp"),
                 "gifs": (GIF_DIR, rf"{HASHED}\.gif", "image/gif")}


def build_demo(service: TrajectoryService, default_checkpoint: Optional[str] = None) -> gr.Blocks:
    for route, (folder, names, content_type) in STATIC_ROUTES.items():
        serve_static(route, folder, names, content_type)
    names = service.names()
    if not names:
        raise FileNotFoundError(f"no checkpoints under {', '.join(map(str, service.roots))}; train one (docs/TRAINING.md)")
    default = default_checkpoint or names[0]
    if default not in names:
        raise ValueError(f"unknown checkpoint {preview(default)}; choose one of {names}")
    default_model = service.model(default)
    other = next((n for n in names if n != default), default)

    def page_urls(name: str) -> dict:
        return {"assets_url": asset_url(service.model(name).assets_file), "plotly_url": PLOTLY_URL}

    def payload(name, seed, steps) -> dict:
        result = service.trajectory(name, seed, steps)
        return {**service.payload(result), **page_urls(result.checkpoint)}

    @shown_as_error
    def run(name, seed, steps):
        return payload(name, seed, typed_steps(steps))

    @shown_as_error
    def follow(open_, pinned, name, seed, steps):
        """Once open, the compare view follows the main seed, unless pinned."""
        return payload(name, seed, typed_steps(steps)) if open_ and not pinned else gr.update()

    @shown_as_error
    def grid(name, first, count, steps):
        payload_, sprite = service.grid_payload(service.trajectories(name, grid_seeds(first, count),
                                                                     typed_steps(steps)))
        return {**payload_, "sprite_url": grid_url(sprite), **page_urls(payload_["checkpoint"])}

    @shown_as_error
    def intervene(name, seed, steps, kind, token, step, donor_seed):
        original, changed, what = service.intervene(name, seed, typed_steps(steps), kind, token, step, donor_seed)
        return {**service.intervention_payload(original, changed, what), **page_urls(original.checkpoint)}

    def on_checkpoint(name, last_good):
        """A checkpoint chosen: its trained H, curves and card. A name that is no checkpoint (typed
        into the box) is one warning, and the box goes back to the last good one: no error badges
        over the form, which keeps working."""
        try:
            model = service.model(name)
        except ValueError as e:
            log.warning("refused checkpoint: %s", preview(str(e), 300))
            gr.Warning(str(e))
            return gr.update(value=last_good), last_good, gr.update(), gr.update(), gr.update(), gr.update()
        return (gr.update(), model.name, gr.update(value=model.trained_steps), eval_figure(model.eval, model.trained_steps),
                eval_takeaway(model.eval, model.trained_steps), _card(model))

    def restore(search):
        """The page's first call: the view a link asks for (?checkpoint=&seed=&steps=, and
        compare=CHECKPOINT:STEPS, grid=FIRST:COUNT when they were open), or nothing to change. A
        link with bad values opens the default view, and the card says why."""
        query = {k: v[0] for k, v in parse_qs(str(search or "").lstrip("?")[:512]).items()}
        unchanged = (gr.update(),) * len(restored)
        if not {"checkpoint", "seed", "steps", "compare", "grid"} & query.keys():
            return unchanged
        try:
            model = service.model(query.get("checkpoint", default))
            result = payload(model.name, query.get("seed", 42), query.get("steps", model.trained_steps))
            out = [gr.update(value=model.name), model.name, result["seed"], result["num_steps"],
                   eval_figure(model.eval, model.trained_steps), eval_takeaway(model.eval, model.trained_steps),
                   _card(model), result] + [gr.update()] * 8
            if "compare" in query:
                name_b, _, steps_b_ = query["compare"].partition(":")
                out[8:13] = [gr.update(visible=True), True, gr.update(value=name_b), int(parse_steps(steps_b_)),
                             payload(name_b, result["seed"], steps_b_)]
            if "grid" in query:
                first, _, count = query["grid"].partition(":")
                out[13:16] = [int(parse_seed(first)), int(whole_number(count, "number of seeds", *GRID_SEEDS)),
                              grid(model.name, first, count, result["num_steps"])]
            return tuple(out)
        except (ValueError, gr.Error) as e:   # said in the card: an unqueued call (this one) shows no toast
            log.warning("refused link: %s", preview(str(e), 300))
            said = f"{_card(default_model)}\n\n⚠️ this link's view cannot be shown: {_code(e)}"
            return unchanged[:6] + (said,) + unchanged[7:]

    def steps_of(name):
        """Compare's checkpoint B comes at its own trained H; a bad name is one warning."""
        try:
            return service.trained_steps(name)
        except ValueError as e:
            log.warning("refused checkpoint B: %s", preview(str(e), 300))
            gr.Warning(str(e))
            return gr.update()

    @shown_as_error
    def beyond(name, seed, steps):
        return service.beyond_payload(name, seed, typed_steps(steps))

    @shown_as_error
    def export_gif(name, seed, steps):
        """The GIF under /rtm-static/gifs/ (named by its content: no server path in the answer)."""
        result = service.trajectory(name, seed, typed_steps(steps))
        prune_gifs(GIF_DIR)
        path = write_by_hash(GIF_DIR, gif_bytes(result.frames), ".gif")
        filename = f"{result.checkpoint}-seed{result.seed}-{result.num_steps}steps.gif"
        return {"items": [{"src": gif_url(path), "caption": f"seed {result.seed}, {plural(result.num_steps, 'step')}"}],
                "download": {"url": gif_url(path), "filename": filename}}

    @shown_as_error
    def walk(name, seed_a, seed_b, count):
        frames = service.seed_walk(name, seed_a, seed_b, count)
        last = len(frames) - 1
        return {"items": [{"src": image_data_uri(f),
                           "caption": f"seed {int(float(seed_a))}" if k == 0 else f"seed {int(float(seed_b))}"
                           if k == last else f"{k}/{last} of the way"} for k, f in enumerate(frames)],
                "download": None}

    with gr.Blocks(title="RTM Explorer") as demo:
        gr.Markdown(INTRO, elem_id="rtm-intro")
        with gr.Row(equal_height=True, elem_id="rtm-controls"):
            # allow_custom_value: a name that is not a checkpoint reaches the service, which caps and
            # refuses it with its own message (Gradio's would echo the whole value). Its own column
            # keeps it out of the seed's form block, so that on a phone it gets a whole row (PHONE_CSS).
            with gr.Column(scale=2, min_width=160, elem_id="rtm-checkpoint"):
                checkpoint = gr.Dropdown(names, value=default, label="checkpoint", allow_custom_value=True)
            # No minimum/maximum/precision here: the service checks, and says so, instead of the
            # box rounding 3.5 to 4 or clamping 10000 to 64 behind the user's back.
            seed = whole_number_box(value=42, label=f"seed (0 to {UI_MAX_SEED})", elem_id="rtm-seed", scale=1)
            dice = gr.Button("🎲 random seed", scale=0)
            steps = whole_number_box(value=default_model.trained_steps, label=f"refinement steps (1 to {MAX_STEPS})",
                              elem_id="rtm-steps", scale=1)
            generate = gr.Button("Generate", variant="primary", scale=0, elem_id="rtm-generate")
        card = gr.Markdown(_card(default_model))
        last_good = gr.State(default)                     # the checkpoint box goes back here after a bad name
        url_state = gr.Textbox(visible=False)             # the page's ?query, read by READ_URL_JS
        # The run-on overlay's call from the viewer's script (POST /gradio_api/call/beyond): no widget.
        beyond_button, beyond_out = gr.Button(visible=False), gr.JSON(visible=False)
        with gr.Accordion("Compare: the same seed through another checkpoint or step count", open=False):
            with gr.Row(equal_height=True):
                checkpoint_b = gr.Dropdown(names, value=other, label="checkpoint B", allow_custom_value=True)
                steps_b = whole_number_box(value=service.trained_steps(other), label=f"refinement steps B (1 to {MAX_STEPS})")
                pin_b = gr.Checkbox(value=False, label="pin B to its seed (else B follows every Generate)")
                compare_button = gr.Button("Compare")
        with gr.Row(equal_height=False, elem_id="rtm-viewers"):
            with gr.Column(min_width=340):
                # The first frame arrives with the page: no round trip before the user sees an image.
                view = viewer("rtm-viewer", value=payload(default, 42, None))
            with gr.Column(min_width=340, visible=False) as column_b:
                view_b = viewer("rtm-viewer-b")
        with gr.Accordion("Reach into the recursion: freeze, knock out or swap one latent token", open=True):
            gr.Markdown("Click a cell of the token-change heatmap to pick a token (row) and a step (column), or "
                        "type them. **Freeze** holds the token at its value after that step; **knock out** holds "
                        "it at its starting value (for the shipped models, the start every seed shares); **swap** "
                        "puts in the donor seed's token at that step and lets the recursion go on. The result "
                        "opens beside the original on the step it changed most, the pixels that differ in cyan; "
                        "drag the wipe to see the original, and read under the image how the change grew or "
                        "healed step by step.")
            with gr.Row(equal_height=True):
                int_kind = gr.Dropdown([("freeze", "freeze"), ("knock out", "knockout"), ("swap", "swap")],
                                       value="freeze", label="intervention", allow_custom_value=True,
                                       elem_id="rtm-int-kind")
                int_token = whole_number_box(value=0, label="token (row of the heatmap)", elem_id="rtm-int-token")
                int_step = whole_number_box(value=1, label="from step", elem_id="rtm-int-step")
                int_donor = whole_number_box(value=7, label="donor seed (swap)", elem_id="rtm-int-donor")
                intervene_button = gr.Button("Intervene")
        with gr.Accordion("Many seeds at once: a grid refining under one slider", open=True):
            with gr.Row(equal_height=True):
                grid_first = whole_number_box(value=0, label=f"first seed (0 to {UI_MAX_SEED})")
                grid_count = whole_number_box(value=16, label=f"seeds ({GRID_SEEDS[0]} to {GRID_SEEDS[1]})")
                grid_button = gr.Button("Show grid")
            grid_html = grid_view("rtm-grid")
        with gr.Row():
            with gr.Column(scale=2):
                curves = _html("rtm-eval", "curves", '<div class="rtm-curvebox"><div class="rtm-curves"></div>'
                               '<div class="rtm-curvemark"></div></div>',
                               eval_figure(default_model.eval, default_model.trained_steps))
                takeaway = gr.Markdown(eval_takeaway(default_model.eval, default_model.trained_steps))
                gr.Markdown(METRICS_NOTE, elem_id="rtm-metrics-note")
            with gr.Column():
                gif_button = gr.Button("Export the refinement as GIF")
                gif_file = figures("rtm-gif")
        with gr.Accordion("Seed walk: from one seed to another along the sphere of z", open=False):
            with gr.Row(equal_height=True):
                walk_to = whole_number_box(value=7, label="to seed")
                walk_count = whole_number_box(value=8, label=f"frames ({WALK_FRAMES[0]} to {WALK_FRAMES[1]})")
                walk_button = gr.Button("Walk")
            gr.Markdown("Final frames along the walk, each refined for the trained H:")
            walk_strip = figures("rtm-walk")

        # The page opens its Gradio session as it loads, while the visitor watches the first seed
        # play. Gradio builds a session on a client's first call (a copy of every component's
        # config: 6-35 ms of server CPU), which would otherwise land on the first Generate; when
        # visitors click together, their sessions were built one after another on the event loop
        # ahead of their trajectories (docs/BENCHMARKS.md, "Sessions opened as the page loads").
        # That call also restores the view a link names (it changes nothing for a plain visit).
        compare_open = gr.State(False)
        restored = [checkpoint, last_good, seed, steps, curves, takeaway, card, view,
                    column_b, compare_open, checkpoint_b, steps_b, view_b, grid_first, grid_count, grid_html]
        demo.load(restore, url_state, restored, js=READ_URL_JS, queue=False, api_name=False, show_progress="hidden")
        # always_last: a Generate pressed while one is pending runs once that one is done, so the
        # last click wins (Gradio's default for a button ignores it while one is pending). Up to 32
        # run at once: new seeds asked for together share one forward pass (app/batching.py).
        follow_inputs = [compare_open, pin_b, checkpoint_b, seed, steps_b]
        # The button says that work is pending, in the browser (a server round trip could arrive
        # after a fast answer). Registered first: the page runs a click's events in this order.
        # Reset on success (.then) and on a refused input (.failure: here .then does not run then).
        generate.click(None, None, None, js=PENDING_JS, api_name=False)
        generated = generate.click(run, [checkpoint, seed, steps], view, api_name="trajectory",
                                   trigger_mode="always_last", concurrency_limit=32)
        generated.failure(None, None, None, js=DONE_JS, api_name=False)
        generated.then(None, None, None, js=DONE_JS, api_name=False).then(follow, follow_inputs, view_b, api_name=False)
        # A checkpoint chosen for B comes at its own trained H.
        checkpoint_b.input(steps_of, checkpoint_b, steps_b, api_name=False)
        # Enter in the seed box and the dice are Generate too: the compare view follows them alike.
        seed.submit(run, [checkpoint, seed, steps], view, api_name=False, trigger_mode="always_last").success(
            follow, follow_inputs, view_b, api_name=False)
        dice.click(lambda: random.randint(0, 999_999), None, seed, api_name=False).then(
            run, [checkpoint, seed, steps], view, api_name=False).success(follow, follow_inputs, view_b, api_name=False)
        # .input: the visitor's choice only (a link's restore sets the box without re-running).
        checkpoint.input(on_checkpoint, [checkpoint, last_good], [checkpoint, last_good, steps, curves, takeaway, card],
                         api_name=False).then(run, [last_good, seed, steps], view, api_name=False)
        beyond_button.click(beyond, [checkpoint, seed, steps], beyond_out, api_name="beyond")
        compare_button.click(lambda: (gr.update(visible=True), True), None, [column_b, compare_open],
                             api_name=False).then(run, [checkpoint_b, seed, steps_b], view_b, api_name="compare")
        intervened = intervene_button.click(intervene, [checkpoint, seed, steps, int_kind, int_token, int_step,
                                                        int_donor], view_b, api_name="intervene",
                                            trigger_mode="always_last")
        intervene_button.click(lambda: (gr.update(visible=True), False), None, [column_b, compare_open], queue=False,
                               api_name=False)
        intervened.success(run, [checkpoint, seed, steps], view, api_name=False)
        grid_button.click(grid, [checkpoint, grid_first, grid_count, steps], grid_html, api_name="grid",
                          trigger_mode="always_last")
        # The GIF and the walk start from what the viewer shows, even if the boxes were edited since.
        gif_button.click(export_gif, [checkpoint, seed, steps], gif_file, api_name="gif", js=on_screen_js(3))
        walk_button.click(walk, [checkpoint, seed, walk_to, walk_count], walk_strip, api_name="walk", js=on_screen_js(2))
    return demo


def _card(model) -> str:
    meta, cfg = model.meta, model.generator.config
    m = cfg.mapper
    if m.kind == "rtm":
        mapper = f"RTM, H = {m.num_steps}, L = {m.num_cycles}" + (" (recursion off)" if m.num_steps == 1 else "")
    else:
        recipe = "StyleGAN2 recipe" if m.mlp_layer == "equalized" and m.lr_multiplier != 1 else "RS-IMLE baseline"
        mapper = f"one-pass MLP ({recipe})"
    step = meta.get("total_steps", meta.get("step"))   # a model trained in stages: all of them
    stages = meta.get("stages")
    in_stages = f" in {stages} stages" if isinstance(stages, int) and stages > 1 else ""
    trained = (f"trained {f'{step:,}' if isinstance(step, int) else _code(step)} steps{in_stages} on "
               f"{_code(meta.get('data_source') or meta.get('data'))}" if "step" in meta else "untrained weights")
    # No closing full stop: Gradio draws a code span as an inline block, so on a phone the stop
    # after a long data source wrapped onto a line of its own.
    card = (f"{_code(model.name)} — {mapper}; {cfg.decoder.kind} decoder, "
            f"{cfg.decoder.img_resolution}×{cfg.decoder.img_resolution}; {trained}")
    return card + "".join(f"\n\n⚠️ {_code(w)}" for w in model.warnings)


def _code(text: str) -> str:
    """gr.Markdown renders markup: text from files (names, data sources, warnings) goes in as a code span."""
    return "`" + str(text).replace("`", "'").replace("\n", " ")[:300] + "`"
