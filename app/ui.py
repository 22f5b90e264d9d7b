"""Layout and wiring of the Gradio app: the components, and which of app/handlers.py's functions
each event runs. No tensor code: everything goes through the service."""

from __future__ import annotations

import json
import random
from typing import Optional

import gradio as gr

from .handlers import Handlers, card_text, eval_figure, eval_takeaway
from .http import MIDDLEWARE
from .inputs import GRID_SEEDS, MAX_STEPS, UI_MAX_SEED, WALK_FRAMES, preview
from .service import TrajectoryService
from .static import ASSETS, page_script_url, serve_page_files


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

PENDING_JS = """() => { const b = document.querySelector('#rtm-generate');
  if (b) { b.textContent = 'Generating…'; b.setAttribute('aria-busy', 'true'); } }"""
DONE_JS = """() => { const b = document.querySelector('#rtm-generate');
  if (b) { b.textContent = 'Generate'; b.removeAttribute('aria-busy'); } }"""
# The Generate button and Gradio's footer links in colours that pass WCAG AA (4.5:1) in both
# themes: the theme's own orange under white text does not (2.8:1 in the light theme). Then the stylesheet of every gr.HTML on the page (app/assets/viewer.css;
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


def grid_view(elem_id: str) -> gr.HTML:
    """Many seeds under one slider, their paths on one map (app/assets/grid.js)."""
    return _html(elem_id, "grid", '<div class="rtm-groot" data-step=""></div>')


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


def build_demo(service: TrajectoryService, default_checkpoint: Optional[str] = None) -> gr.Blocks:
    serve_page_files()
    names = service.names()
    if not names:
        raise FileNotFoundError(f"no checkpoints under {', '.join(map(str, service.roots))}; train one (docs/TRAINING.md)")
    default = default_checkpoint or names[0]
    if default not in names:
        raise ValueError(f"unknown checkpoint {preview(default)}; choose one of {', '.join(names)}")
    default_model = service.model(default)
    other = next((n for n in names if n != default), default)
    on = Handlers(service, default)

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
        card = gr.Markdown(card_text(default_model))
        last_good = gr.State(default)                     # the checkpoint box goes back here after a bad name
        url_state = gr.Textbox(visible=False)             # the page's ?query, read by READ_URL_JS
        # The run-on overlay's call from the viewer's script (POST /gradio_api/call/on.beyond): no widget.
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
                view = viewer("rtm-viewer", value=on.payload(default, 42, None))
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
            gr.Markdown("Final frames along the on.walk, each refined for the trained H:")
            walk_strip = figures("rtm-walk")

        # The page opens its Gradio session as it loads, while the visitor watches the first seed
        # play. Gradio builds a session on a client's first call (a copy of every component's
        # config, milliseconds of server CPU), which would otherwise land on the first Generate;
        # visitors who click together would wait for each other's sessions on the event loop
        # (docs/BENCHMARKS.md, "Sessions opened as the page loads").
        # That call also restores the view a link names (it changes nothing for a plain visit).
        compare_open = gr.State(False)
        restored = [checkpoint, last_good, seed, steps, curves, takeaway, card, view,
                    column_b, compare_open, checkpoint_b, steps_b, view_b, grid_first, grid_count, grid_html]
        demo.load(on.restore, url_state, restored, js=READ_URL_JS, queue=False, api_name=False, show_progress="hidden")
        # always_last: a Generate pressed while one is pending runs once that one is done, so the
        # last click wins (Gradio's default for a button ignores it while one is pending). Up to 32
        # run at once: new seeds asked for together share one forward pass (app/batching.py).
        follow_inputs = [compare_open, pin_b, checkpoint_b, seed, steps_b]
        # The button says that work is pending, in the browser (a server round trip could arrive
        # after a fast answer). Registered first: the page runs a click's events in this order.
        # Reset on success (.then) and on a refused input (.failure: here .then does not run then).
        generate.click(None, None, None, js=PENDING_JS, api_name=False)
        generated = generate.click(on.run, [checkpoint, seed, steps], view, api_name="trajectory",
                                   trigger_mode="always_last", concurrency_limit=32)
        generated.failure(None, None, None, js=DONE_JS, api_name=False)
        generated.then(None, None, None, js=DONE_JS, api_name=False).then(on.follow, follow_inputs, view_b, api_name=False)
        # A checkpoint chosen for B comes at its own trained H.
        checkpoint_b.input(on.steps_of, checkpoint_b, steps_b, api_name=False)
        # Enter in the seed box and the dice are Generate too: the compare view follows them alike.
        seed.submit(on.run, [checkpoint, seed, steps], view, api_name=False, trigger_mode="always_last").success(
            on.follow, follow_inputs, view_b, api_name=False)
        dice.click(lambda: random.randint(0, 999_999), None, seed, api_name=False).then(
            on.run, [checkpoint, seed, steps], view, api_name=False).success(on.follow, follow_inputs, view_b, api_name=False)
        # .input: the visitor's choice only (a link's restore sets the box without re-running).
        checkpoint.input(on.on_checkpoint, [checkpoint, last_good], [checkpoint, last_good, steps, curves, takeaway, card],
                         api_name=False).then(on.run, [last_good, seed, steps], view, api_name=False)
        beyond_button.click(on.beyond, [checkpoint, seed, steps], beyond_out, api_name="beyond")
        compare_button.click(lambda: (gr.update(visible=True), True), None, [column_b, compare_open],
                             api_name=False).then(on.run, [checkpoint_b, seed, steps_b], view_b, api_name="compare")
        intervened = intervene_button.click(on.intervene, [checkpoint, seed, steps, int_kind, int_token, int_step,
                                                        int_donor], view_b, api_name="intervene",
                                            trigger_mode="always_last")
        intervene_button.click(lambda: (gr.update(visible=True), False), None, [column_b, compare_open], queue=False,
                               api_name=False)
        intervened.success(on.run, [checkpoint, seed, steps], view, api_name=False)
        grid_button.click(on.grid, [checkpoint, grid_first, grid_count, steps], grid_html, api_name="grid",
                          trigger_mode="always_last")
        # The GIF and the walk start from what the viewer shows, even if the boxes were edited since.
        gif_button.click(on.export_gif, [checkpoint, seed, steps], gif_file, api_name="gif", js=on_screen_js(3))
        walk_button.click(on.walk, [checkpoint, seed, walk_to, walk_count], walk_strip, api_name="walk", js=on_screen_js(2))
    return demo


