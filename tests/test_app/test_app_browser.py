"""The app in a real headless Chromium (Debian's), driven by Playwright. Every test fails on a
page error or a console error: a broken script must not pass because the DOM looks right."""

import os
from pathlib import Path

import pytest

from bench.browser import CHROMIUM, cold_load, drag_latency, watch_errors
from tests.app_server import HOSTILE_LABEL

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"

pytestmark = [pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium "
                                                   "(scripts/install_system_deps.sh installs it)")]


def open_compare(page) -> None:
    """Open the compare view (B: the same seed through the other checkpoint) and wait for B."""
    page.get_by_text("Compare: the same seed").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_selector("#rtm-viewer-b .rtm-root[data-seed]", timeout=30_000)


def seeds_shown(page) -> tuple[str, str]:
    return (page.get_attribute("#rtm-viewer .rtm-root", "data-seed"),
            page.get_attribute("#rtm-viewer-b .rtm-root", "data-seed"))


def current(page) -> tuple[str, str]:
    return (page.get_attribute("#rtm-viewer .rtm-root", "data-step"),
            page.get_attribute("#rtm-viewer .rtm-frame", "src"))


@pytest.mark.slow
def test_three_cold_loads_without_errors_and_one_plotly(browser, app_url):
    for _ in range(3):
        load = cold_load(browser, app_url)
        page = load["page"]
        assert load["errors"] == [], load["errors"]
        assert len(load["plotly_loads"]) == 1, load["plotly_loads"]       # one copy, ours, served locally
        assert page.evaluate("typeof window.Plotly.newPlot") == "function"
        outside = [u for u in page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
                   if not u.startswith(("http://127.0.0.1", "data:", "blob:"))]
        assert outside == []
        assert load["first_frame_ms"] > 0 and current(page)[0] == "3"     # the trained H, on arrival
        load["context"].close()


def marker_offset(page, step: int) -> float:
    """Pixels between the red ring's centre and plotly's own marker for `step` on the map."""
    return page.evaluate("""(k) => {
        const ring = document.querySelector('#rtm-viewer .rtm-marker').getBoundingClientRect();
        const point = document.querySelectorAll('#rtm-viewer .rtm-map .scatterlayer .point')[k].getBoundingClientRect();
        return Math.hypot(ring.x + ring.width / 2 - point.x - point.width / 2, ring.y + ring.height / 2 - point.y - point.height / 2);
    }""", step)


def test_scrub_play_and_the_marker_follows_without_server_requests(loaded):
    page = loaded["page"]
    seed_box = page.locator("#rtm-seed input")
    seed_box.fill("7")
    page.get_by_role("button", name="Generate").click()
    # Seed 7's own trajectory, its map drawn and the ring placed (the page opened on another
    # seed, also at "step 3 of 3": waiting on the caption alone raced with the new render).
    page.wait_for_function("""() => {
        const root = document.querySelector('#rtm-viewer .rtm-root');
        const ring = root.querySelector('.rtm-marker');
        return root.dataset.seed === '7' && ring !== null && getComputedStyle(ring).display === 'block'
            && root.querySelectorAll('.rtm-map .scatterlayer .point').length === 4;
    }""")
    step, src_last = current(page)
    assert step == "3" and marker_offset(page, 3) < 2.5

    before = len(page.requests)
    slider = page.locator("#rtm-viewer .rtm-slider")
    slider.focus()
    for k in (2, 1, 0):
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(f"document.querySelector('#rtm-viewer .rtm-root').dataset.step === '{k}'")
        assert marker_offset(page, k) < 2.5        # the ring sits on the step's point of the path
    step, src_first = current(page)
    assert step == "0" and src_first != src_last
    page.locator("#rtm-viewer .rtm-next").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '1'")
    page.locator("#rtm-viewer .rtm-thumb[data-step='2']").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '2'")
    page.locator("#rtm-viewer .rtm-play").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '3'", timeout=5000)
    assert drag_latency(page)                       # dragging fires input events the viewer follows
    assert len(page.requests) == before, page.requests[before:]  # scrubbing never asked the server
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "app.png"), full_page=True)


def test_the_last_generate_wins(loaded):
    """A second Generate 150 ms after a slow first one (64 steps) is not dropped: the viewer
    ends on the second seed and its step count."""
    page = loaded["page"]
    seed_box, steps_box = page.locator("#rtm-seed input"), page.locator("#rtm-steps input")
    button = page.locator("#rtm-generate")          # its label says "Generating…" while one is pending
    seed_box.fill("5001")
    steps_box.fill("64")
    button.click()
    page.wait_for_timeout(150)
    seed_box.fill("5002")
    steps_box.fill("2")
    button.click()
    page.wait_for_function("""() => {
        const root = document.querySelector('#rtm-viewer .rtm-root');
        return root.dataset.seed === '5002' && root.dataset.step === '2';
    }""", timeout=30_000)
    page.wait_for_timeout(1500)                      # nothing older arrives afterwards
    assert page.get_attribute("#rtm-viewer .rtm-root", "data-seed") == "5002"


def test_hostile_labels_render_as_text(loaded):
    page = loaded["page"]
    page.wait_for_selector("#rtm-viewer .rtm-nearest figcaption")
    captions = page.locator("#rtm-viewer .rtm-nearest figcaption").all_text_contents()
    assert len(captions) == 3 and all(c.startswith(HOSTILE_LABEL) for c in captions)
    assert page.locator("#rtm-viewer .rtm-nearest img").count() == 0   # no element was made from the label
    assert page.evaluate("window.__xss") is None


@pytest.mark.slow
def test_bad_seed_shows_a_visible_error_and_the_app_keeps_working(loaded):
    page = loaded["page"]
    seed_box = page.locator("#rtm-seed input")
    for bad, message in (("3.5", "not a whole number"), ("99999999999", "out of range")):
        seed_box.fill(bad)
        page.locator("#rtm-generate").click()
        page.get_by_text(message).first.wait_for(timeout=10_000)
        page.wait_for_function("document.querySelector('#rtm-generate').textContent.trim() === 'Generate'")
    seed_box.fill("11")
    page.locator("#rtm-generate").click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.seed === '11'")


def test_grid_scrubs_in_the_browser_and_a_click_opens_the_seed(loaded):
    page = loaded["page"]
    page.get_by_role("button", name="Show grid").click()
    page.wait_for_function("document.querySelector('#rtm-grid .rtm-groot').dataset.seeds === '16'", timeout=30_000)
    cells = page.locator("#rtm-grid .rtm-gcell")
    assert cells.count() == 16 and cells.nth(5).get_attribute("data-seed") == "5"
    before = len(page.requests)
    page.locator("#rtm-grid .rtm-prev").click()
    page.wait_for_function("document.querySelector('#rtm-grid .rtm-groot').dataset.step === '2'")
    position = page.evaluate("getComputedStyle(document.querySelectorAll('#rtm-grid .rtm-gpic')[5]).backgroundPosition")
    assert position.endswith("66.6667%") or position.endswith("66.667%"), position   # step 2 of 3, seed 5's column
    assert len(page.requests) == before                  # scrubbing the grid never asks the server
    cells.nth(5).click()
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.seed === '5'", timeout=30_000)


def test_pick_a_token_on_the_heatmap_and_intervene(loaded):
    page = loaded["page"]
    heat = page.locator("#rtm-viewer .rtm-heat")
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.9)   # last token (of 4), step 2 of 3
    page.wait_for_function("document.querySelector('#rtm-int-step input').value === '2'")
    token = page.input_value("#rtm-int-token input")
    assert int(token) >= 1
    page.get_by_role("button", name="Intervene").click()
    page.wait_for_function("""() => { const t = document.querySelector('#rtm-viewer-b .rtm-title');
        return t && t.textContent.includes('frozen from step 2'); }""", timeout=30_000)
    assert f"token {token} frozen" in page.text_content("#rtm-viewer-b .rtm-title")
    assert "url(" in page.evaluate("getComputedStyle(document.querySelector('#rtm-viewer-b .rtm-mask')).backgroundImage")
    assert "differ from the original" in page.text_content("#rtm-viewer-b .rtm-caption")


def test_gif_and_walk_start_from_the_trajectory_on_screen(loaded):
    """Edited boxes without a Generate: the GIF and the walk still use the seed and steps shown."""
    page = loaded["page"]
    shown = page.get_attribute("#rtm-viewer .rtm-root", "data-seed")
    page.locator("#rtm-seed input").fill("777")        # typed, not generated
    page.get_by_role("button", name="Export the refinement as GIF").click()
    page.wait_for_selector("#rtm-gif .rtm-download", timeout=30_000)
    assert page.text_content("#rtm-gif .rtm-download") == f"Download tiny-rtm-seed{shown}-3steps.gif"
    assert page.get_attribute("#rtm-gif img", "src").startswith("/rtm-static/gifs/")
    page.get_by_text("Seed walk").click()
    page.get_by_role("button", name="Walk", exact=True).click()
    page.wait_for_selector("#rtm-walk figcaption", timeout=30_000)
    captions = page.locator("#rtm-walk figcaption").all_text_contents()
    assert captions[0] == f"seed {shown}" and captions[-1] == "seed 7" and len(captions) == 8


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""
    def luminance(css):
        r, g, b = (float(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_controls_are_readable_in_both_themes(browser, app_url, theme):
    load = cold_load(browser, app_url + f"?__theme={theme}")
    page = load["page"]
    try:
        for selector in ("#rtm-viewer .rtm-play", "#rtm-viewer .rtm-prev", "#rtm-grid .rtm-groot", "#rtm-generate",
                         "footer a", "footer button"):
            colours = page.evaluate("""(s) => { let e = document.querySelector(s), c = getComputedStyle(e).color, bg;
                for (; e; e = e.parentElement) { bg = getComputedStyle(e).backgroundColor;
                  if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') break; }
                return [c, bg || 'rgb(255, 255, 255)']; }""", selector)
            assert contrast(*colours) >= 4.5, (theme, selector, colours)
        box = page.locator("#rtm-viewer .rtm-link-box")
        assert not box.is_visible()                       # nothing to link to until the compare view opens
        open_compare(page)
        unticked = box.screenshot()
        box.check()
        assert box.screenshot() != unticked               # a ticked box looks ticked
        page.wait_for_function("document.querySelector('#rtm-eval .rtm-curvemark').style.display === 'block'",
                               timeout=30_000)            # the metric curves mark the viewer's step
    finally:
        errors = load["errors"]
        load["context"].close()
    assert errors == [], errors


CHART_INK = """(sel) => { const svg = document.querySelector(sel + ' .main-svg'), tick = document.querySelector(sel + ' .g-ytitle text, ' + sel + ' .gtitle');
  let e = svg, bg = 'rgb(255, 255, 255)';
  for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; } }
  return [svg.style.background, getComputedStyle(tick).fill, bg]; }"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_charts_follow_the_theme(browser, app_url, theme):
    """plotly.js paints white panels with dark ink on any page: in the dark theme every chart (the
    map, the step bars, the metric curves, the grid's map) must be see-through with ink that reads
    on the block behind it, not a bright rectangle."""
    load = cold_load(browser, app_url + f"?__theme={theme}")
    page = load["page"]
    try:
        page.get_by_role("button", name="Show grid").click()
        page.wait_for_selector("#rtm-grid .rtm-map .g-ytitle text", timeout=30_000)
        page.wait_for_selector("#rtm-eval .rtm-curves .ytick text", timeout=30_000)
        page.wait_for_selector("#rtm-viewer .rtm-tail .scatterlayer .point", timeout=30_000)
        for chart in ("#rtm-viewer .rtm-map", "#rtm-viewer .rtm-disp", "#rtm-eval .rtm-curves", "#rtm-grid .rtm-map",
                      "#rtm-viewer .rtm-tail"):
            paper, ink, behind = page.evaluate(CHART_INK, chart)
            assert paper in ("rgba(0, 0, 0, 0)", "transparent"), (theme, chart, paper)
            assert contrast(ink, behind) >= 4.5, (theme, chart, ink, behind)
        # Graphics need 3:1: every step's marker has an outline in the theme's ink (viridis' dark
        # end alone, the early steps, was 1.3:1 on the dark panel).
        outlines = page.evaluate("[...document.querySelectorAll('#rtm-viewer .rtm-map .scatterlayer .point')]"
                                 ".map(p => getComputedStyle(p).stroke)")
        _, _, behind = page.evaluate(CHART_INK, "#rtm-viewer .rtm-map")
        assert outlines and all(contrast(o, behind) >= 3 for o in outlines), (theme, outlines, behind)
        assert (theme == "dark") == (contrast("rgb(0, 0, 0)", behind) < 4.5)   # the dark theme's blocks are dark
    finally:
        errors = load["errors"]
        load["context"].close()
    assert errors == [], errors


def test_the_first_seed_plays_once_on_load_unless_less_motion_is_asked(browser, app_url):
    for motion, plays in (("no-preference", True), ("reduce", False)):
        context = browser.new_context(reduced_motion=motion)
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(app_url)
        page.wait_for_selector("#rtm-viewer .rtm-root[data-seed]")
        root = "#rtm-viewer .rtm-root"
        if plays:   # after 0.6 s it plays 3 steps at 10 steps/s; a loaded machine may take longer
            page.wait_for_selector(f"{root}[data-autoplayed='1']", timeout=15_000)
        else:       # a page that would autoplay does so 0.6 s after the first frame
            page.wait_for_timeout(2500)
            assert page.get_attribute(root, "data-autoplayed") is None, motion
        # either way it ends on the last frame
        page.wait_for_selector(f"{root}[data-step='3']", timeout=15_000)
        context.close()
        assert errors == []


def test_a_page_opens_its_session_as_it_loads(browser, served):
    """Before any click, the page's load call has made the server build its Gradio session, so
    that a visitor's first Generate does not wait for it (docs/BENCHMARKS.md)."""
    demo, url = served
    sessions = demo.server_app.state_holder.session_data
    before = set(sessions)
    context = browser.new_context()
    page = context.new_page()
    errors = watch_errors(page)
    calls = []
    page.on("request", lambda r: calls.append(r.url) if "/gradio_api/" in r.url and "heartbeat" not in r.url else None)
    page.goto(url)
    page.wait_for_selector("#rtm-viewer .rtm-root[data-seed]")
    for _ in range(100):                                 # the load call runs after the page's first paint
        if set(sessions) - before:
            break
        page.wait_for_timeout(100)
    assert len(set(sessions) - before) == 1, calls
    assert len(calls) == 1 and calls[0].endswith("/gradio_api/run/predict"), calls   # no trajectory asked for
    context.close()
    assert errors == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_fits_a_phone_screen(browser, app_url, theme):
    """At 390 x 844 (a phone): nothing scrolls sideways, the frame fills most of the width,
    the step buttons are finger-sized (44 px, the common guideline) and the slider is on screen."""
    load = cold_load(browser, app_url + f"?__theme={theme}", viewport=(390, 844))
    page = load["page"]
    try:
        boxes = page.evaluate("""() => {
          const box = s => { const b = document.querySelector(s).getBoundingClientRect();
                             return {left: b.left, right: b.right, width: b.width, height: b.height}; };
          return {scroll: document.documentElement.scrollWidth, frame: box('#rtm-viewer .rtm-frame'),
                  slider: box('#rtm-viewer .rtm-slider'), buttons: ['.rtm-prev', '.rtm-play', '.rtm-next']
                  .map(s => box('#rtm-viewer ' + s))}; }""")
        assert boxes["scroll"] <= 390, boxes
        assert boxes["frame"]["width"] >= 280 and boxes["frame"]["right"] <= 390, boxes
        assert all(b["height"] >= 44 and b["width"] >= 44 for b in boxes["buttons"]), boxes
        assert 0 <= boxes["slider"]["left"] and boxes["slider"]["right"] <= 390, boxes
        # The longest shipped checkpoint's name fits the checkpoint box (in half a row it was cut
        # to "noto-faces-rtm-6"): its width in the box's own font, against the box's text area.
        longest = max((p.name for p in SHIPPED.iterdir() if (p / "config.json").exists()), key=len)
        fit = page.evaluate("""(name) => {
          const input = document.querySelector('#rtm-checkpoint input'), style = getComputedStyle(input);
          const ctx = document.createElement('canvas').getContext('2d');
          ctx.font = style.font;
          return {text: ctx.measureText(name).width, room: input.clientWidth - parseFloat(style.paddingLeft)
                  - parseFloat(style.paddingRight)}; }""", longest)
        assert fit["text"] <= fit["room"], (longest, fit)
        # And they work there. Under load the viewer may still be re-rendered (back to the last
        # step) after the first paint, so wait for the step the click asked for, not for time.
        step = page.get_attribute("#rtm-viewer .rtm-root", "data-step")
        page.click("#rtm-viewer .rtm-prev")
        page.wait_for_function("(s) => document.querySelector('#rtm-viewer .rtm-root').dataset.step === s",
                               arg=str(int(step) - 1), timeout=15_000)
    finally:
        errors = load["errors"]
        load["context"].close()
    assert errors == [], errors


def test_the_compare_view_follows_enter_and_the_dice_and_linked_viewers_play_together(loaded):
    page = loaded["page"]
    open_compare(page)
    seed_box = page.locator("#rtm-seed input")
    seed_box.fill("321")
    seed_box.press("Enter")                                      # Enter is Generate: B follows it
    page.wait_for_function("""() => ['#rtm-viewer', '#rtm-viewer-b'].every(
        v => document.querySelector(v + ' .rtm-root').dataset.seed === '321')""", timeout=30_000)
    page.get_by_role("button", name="🎲 random seed").click()     # so does the dice
    page.wait_for_function("""() => { const a = document.querySelector('#rtm-viewer .rtm-root').dataset.seed,
        b = document.querySelector('#rtm-viewer-b .rtm-root').dataset.seed; return a !== '321' && a === b; }""",
                           timeout=30_000)
    a, b = seeds_shown(page)
    assert a == b == page.input_value("#rtm-seed input")
    # Linked sliders: Play on A plays B too (B, a one-step MLP, at its last step, starts again at 0).
    page.locator("#rtm-viewer .rtm-link-box").check()
    last_b = page.get_attribute("#rtm-viewer-b .rtm-root", "data-steps")
    assert page.get_attribute("#rtm-viewer-b .rtm-root", "data-step") == last_b
    page.evaluate("""() => { window.__bSteps = [];
        new MutationObserver(() => window.__bSteps.push(document.querySelector('#rtm-viewer-b .rtm-root').dataset.step))
          .observe(document.querySelector('#rtm-viewer-b .rtm-root'), {attributes: true, attributeFilter: ['data-step']}); }""")
    page.locator("#rtm-viewer .rtm-play").click()
    page.wait_for_function("(last) => window.__bSteps.length >= 2 && window.__bSteps.at(-1) === last", arg=last_b,
                           timeout=10_000)
    assert page.evaluate("window.__bSteps")[0] == "0"            # B played from the start, as A did


def test_an_unknown_api_name_is_a_404_from_the_page_too(loaded):
    page = loaded["page"]
    statuses = page.evaluate("""async () => { const out = [];
        for (const name of ['trajectorx', 'false_8', 'x'.repeat(3000)]) {
          const r = await fetch('/gradio_api/run/' + name, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                            body: JSON.stringify({data: ['tiny-rtm', 1, 3]})});
          out.push([r.status, (await r.json()).error.length]); }
        return out; }""")
    assert all(status == 404 and length < 300 for status, length in statuses), statuses
    # The browser logs each refused fetch as a console error: those three, and nothing else.
    assert len(loaded["errors"]) == 3 and all("404" in e for e in loaded["errors"]), loaded["errors"]
    loaded["errors"].clear()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_on_a_phone_generate_is_near_the_image_and_brings_it_into_view(browser, app_url, theme):
    load = cold_load(browser, app_url + f"?__theme={theme}", viewport=(390, 844))
    page = load["page"]
    try:
        where = """() => { const y = s => document.querySelector(s).getBoundingClientRect();
            return {title: y('h1').top, generate: y('#rtm-generate').bottom, frame: y('#rtm-viewer .rtm-frame').top,
                    frameBottom: y('#rtm-viewer .rtm-frame').bottom, height: innerHeight}; }"""
        at = page.evaluate(where)
        assert at["title"] < 100, at                                 # the page starts with its title
        assert at["frame"] < at["height"], at                        # the image starts on the first screen
        assert 0 < at["frame"] - at["generate"] < 400, at            # Generate within a thumb's reach above it
        page.evaluate("window.scrollTo(0, 0)")
        page.fill("#rtm-seed input", "77")
        page.click("#rtm-generate")
        page.wait_for_selector("#rtm-viewer .rtm-root[data-seed='77']", timeout=30_000)
        page.wait_for_function("""() => { const r = document.querySelector('#rtm-viewer .rtm-frame').getBoundingClientRect();
            return r.top >= 0 && r.bottom <= innerHeight; }""", timeout=10_000)   # the new image is in view
    finally:
        errors = load["errors"]
        load["context"].close()
    assert errors == [], errors
