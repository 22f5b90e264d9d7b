"""The page explains itself, in a real headless Chromium: the schematic follows the slider, each
step's caption is the service's (computed from the trajectory), every step can be reached on the
map, the displacement axis goes log, the run-on overlay, an intervention's per-step change, the
view in the URL, the keys, and a checkpoint name that is no checkpoint. Both themes, desktop and
phone where the layout differs. Every test fails on a page or console error."""

import os
from pathlib import Path

import pytest

from app.encode import image_data_uri
from app.service import TrajectoryService
from bench.browser import CHROMIUM
from tests.app_server import make_checkpoints

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "tests" / "artifacts"

pytestmark = [pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium "
                                                   "(scripts/install_system_deps.sh installs it)")]
PHONE, DESKTOP = (390, 844), (1280, 1100)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The same tiny checkpoints as the server's (made from the same seed): what the page should show."""
    return TrajectoryService(make_checkpoints(tmp_path_factory.mktemp("expected")))


def step_to(page, k: int, viewer: str = "#rtm-viewer") -> None:
    page.evaluate("([sel, k]) => { const s = document.querySelector(sel + ' .rtm-slider'); s.value = String(k);"
                  " s.dispatchEvent(new Event('input', { bubbles: true })); }", [viewer, k])
    page.wait_for_function("([sel, k]) => document.querySelector(sel + ' .rtm-root').dataset.step === String(k)",
                           arg=[viewer, k])


def shown_step(page, viewer: str = "#rtm-viewer") -> int:
    return int(page.get_attribute(f"{viewer} .rtm-root", "data-step"))


def generate(page, seed: int, steps: int) -> None:
    page.locator("#rtm-seed input").fill(str(seed))
    page.locator("#rtm-steps input").fill(str(steps))
    page.locator("#rtm-generate").click()
    page.wait_for_function("([seed, steps]) => { const r = document.querySelector('#rtm-viewer .rtm-root');"
                           " return r.dataset.seed === String(seed) && r.dataset.steps === String(steps)"
                           " && r.querySelectorAll('.rtm-map .scatterlayer .point').length > 0; }", arg=[seed, steps])


def click_point(page, point) -> None:
    """plotly hit-tests a click on its drag layer, over the point: point at it, then click (its
    plot in the middle of the window first: a click that lands as the page scrolls is lost)."""
    point.evaluate("p => p.closest('.js-plotly-plot').scrollIntoView({ block: 'center' })")
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # plotly takes the clicked point from its hover (computed at most every 50 ms), and a second
    # click soon after the last one is a double click (which resets the axes), not a click.
    page.wait_for_timeout(120)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_timeout(400)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_schematic_follows_the_slider_and_each_step_has_the_services_caption(open_page, service, theme, viewport):
    with open_page(f"?__theme={theme}", viewport=viewport) as page:
        expected = service.payload(service.trajectory("tiny-rtm", 42, 3))
        for k in (0, 1, 2, 3):
            step_to(page, k)
            caption = page.text_content("#rtm-viewer .rtm-caption")
            assert caption == f"Step {k} of 3. {expected['captions'][k]}"
            block = page.text_content("#rtm-viewer .rtm-box-block .rtm-live")
            assert block == ("not run yet" if k == 0 else f"step {k} of 3")
            moved = page.text_content("#rtm-viewer .rtm-box-w .rtm-live")   # 3 significant digits
            assert moved == ("the start" if k == 0 else f"moved {expected['displacement'][k - 1]:.3g}")
            assert page.get_attribute("#rtm-viewer .rtm-live-img", "src") == page.get_attribute("#rtm-viewer .rtm-frame", "src")
            if k == 0:   # the shared start, from the checkpoint's assets (the payload leaves it out)
                assert expected["frames"][0] is None
                page.wait_for_function("(src) => document.querySelector('#rtm-viewer .rtm-frame').src === src",
                                       arg=image_data_uri(service.trajectory("tiny-rtm", 42, 3).frames[0]))
            lit = page.evaluate("[...document.querySelector('#rtm-viewer .rtm-box-block').classList]")
            assert (k > 0) == any(c.startswith("rtm-lit-") for c in lit)   # the loop lights once per step
        # Every box and every word says what it is, on tap as on hover.
        for box in page.locator("#rtm-viewer .rtm-box").all() + page.locator("#rtm-viewer .rtm-term").all():
            box.click()
            name = box.locator("b").text_content() if box.locator("b").count() else box.text_content()
            said = page.text_content("#rtm-viewer .rtm-explain")
            assert said.startswith(f"{name}: ") and len(said) > len(name) + 30
        if viewport == PHONE:   # the image still starts on the first screen, the schematic after it
            frame_top = page.evaluate("document.querySelector('#rtm-viewer .rtm-frame').getBoundingClientRect().top"
                                      " + window.scrollY")
            schema_top = page.evaluate("document.querySelector('#rtm-viewer .rtm-schema').getBoundingClientRect().top"
                                       " + window.scrollY")
            assert frame_top < viewport[1] and schema_top > frame_top
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"explains-{theme}-{viewport[0]}.png"), full_page=True)


def test_every_step_is_reachable_on_the_map_or_its_fisheye(loaded, service):
    page = loaded["page"]
    generate(page, 5, 12)
    tail = service.payload(service.trajectory("tiny-rtm", 5, 12))["tail"]
    page.wait_for_function("document.querySelectorAll('#rtm-viewer .rtm-tail .scatterlayer .point').length === "
                           f"{12 - tail['from_step'] + 1}")
    points = page.locator("#rtm-viewer .rtm-tail .scatterlayer .point")
    points.first.evaluate("p => p.closest('.js-plotly-plot').scrollIntoView({ block: 'center' })")
    centres = [(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2) for b in (p.bounding_box() for p in points.all())]
    for j, (x, y) in enumerate(centres):             # apart enough for a finger or a pointer
        assert all(((x - u) ** 2 + (y - w) ** 2) ** 0.5 >= 4 for u, w in centres[j + 1:]), (j, centres)
    for j in range(len(centres)):
        click_point(page, points.nth(j))
        page.wait_for_function(f"document.querySelector('#rtm-viewer .rtm-root').dataset.step === '{tail['from_step'] + j}'")
    main = page.locator("#rtm-viewer .rtm-map .scatterlayer .point")
    for k in range(tail["from_step"]):               # the earlier steps on the map itself
        click_point(page, main.nth(k))
        page.wait_for_function(f"document.querySelector('#rtm-viewer .rtm-root').dataset.step === '{k}'")
    key = page.text_content("#rtm-viewer .rtm-mapkey")
    assert "axes have no units" in key and "diamonds" in key and "fisheye" in key
    assert page.locator("#rtm-viewer .rtm-map .xtick text").count() == 0   # unnumbered axes
    assert "start (every seed)" in page.text_content("#rtm-viewer .rtm-map .annotation")


def test_the_displacement_axis_switches_between_log_and_linear(loaded):
    page = loaded["page"]
    axis = "document.querySelector('#rtm-viewer .rtm-disp').layout.yaxis.type"
    box = page.locator("#rtm-viewer .rtm-log-box")
    box.check()
    page.wait_for_function(f"{axis} === 'log'")
    box.uncheck()
    page.wait_for_function(f"{axis} === 'linear'")


def test_the_run_on_overlay_draws_the_path_to_64_steps_and_says_what_changed(loaded, service):
    page = loaded["page"]
    traces = "document.querySelector('#rtm-viewer .rtm-map').data"
    page.locator("#rtm-viewer .rtm-beyond-box").check()
    page.wait_for_function(f"{traces}.length === 2", timeout=60_000)
    expected = service.beyond_payload("tiny-rtm", 42, 3)
    assert page.text_content("#rtm-viewer .rtm-beyondcap") == expected["summary"]
    assert page.evaluate(f"{traces}[1].x.length") == 62                    # steps 3 to 64
    assert page.get_attribute("#rtm-viewer .rtm-beyondimg", "src") == expected["frame"]
    generate(page, 8, 3)                                                    # stays on for the next seed
    page.wait_for_function(f"{traces}.length === 2", timeout=60_000)
    assert page.locator("#rtm-viewer .rtm-beyond-box").is_checked()
    page.locator("#rtm-viewer .rtm-beyond-box").uncheck()
    page.wait_for_function(f"{traces}.length === 1")


def test_an_intervention_opens_on_its_largest_change_with_its_sparkline_wipe_and_cell(loaded, service):
    page = loaded["page"]
    page.locator("#rtm-int-kind input").fill("swap")
    page.keyboard.press("Enter")
    page.locator("#rtm-int-token input").fill("1")
    page.locator("#rtm-int-step input").fill("1")
    page.locator("#rtm-int-donor input").fill("7")
    page.get_by_role("button", name="Intervene").click()
    page.wait_for_selector("#rtm-viewer-b .rtm-root[data-seed] .rtm-sparkcap", timeout=30_000)
    page.wait_for_function("document.querySelector('#rtm-viewer-b .rtm-sparkcap').textContent.length > 0")
    original, changed, what = service.intervene("tiny-rtm", 42, 3, "swap", 1, 1, 7)
    expected = service.intervention_payload(original, changed, what)
    peak = max(range(4), key=lambda k: expected["changed_fraction"][k])
    assert shown_step(page, "#rtm-viewer-b") == peak
    assert expected["change_summary"] in page.text_content("#rtm-viewer-b .rtm-sparkcap")
    assert "differ from the original's" in page.text_content("#rtm-viewer-b .rtm-caption")
    wipe = page.locator("#rtm-viewer-b .rtm-wipe-range")
    wipe.fill("60")
    assert page.evaluate("getComputedStyle(document.querySelector('#rtm-viewer-b .rtm-before')).clipPath") == \
        "inset(0px 40% 0px 0px)"
    assert page.get_attribute("#rtm-viewer-b .rtm-before", "src") == expected["original_frames"][peak]
    cell = page.evaluate("(() => { const c = document.querySelector('#rtm-viewer-b .rtm-heatcell').style;"
                         " return [c.display, c.left, c.top]; })()")
    assert cell == ["block", "0%", "25%"]                                   # step 1's column, token 1 of 4's row
    assert page.locator("#rtm-viewer .rtm-wipe").is_hidden()               # the original has nothing to wipe


@pytest.mark.slow
def test_the_url_restores_the_view_compare_and_grid_and_follows_the_slider(open_page):
    with open_page("?checkpoint=tiny-mlp&seed=7&steps=1&step=0") as page:
        page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.seed === '7'")
        assert page.get_attribute("#rtm-viewer .rtm-root", "data-checkpoint") == "tiny-mlp"
        assert shown_step(page) == 0 and page.locator("#rtm-checkpoint input").input_value() == "tiny-mlp"
        assert page.locator("#rtm-steps input").input_value() == "1"
        step_to(page, 1)
        page.wait_for_function("new URL(location.href).searchParams.get('step') === '1'")
        assert "seed=7" in page.url and "checkpoint=tiny-mlp" in page.url
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.locator("#rtm-viewer .rtm-copy").click()
        page.wait_for_function("document.querySelector('#rtm-viewer .rtm-copy').textContent.includes('copied')")
        assert page.evaluate("navigator.clipboard.readText()") == page.url
    with open_page("?checkpoint=tiny-rtm&seed=7&steps=3&compare=tiny-mlp:1&grid=2:4") as page:   # compare and grid too
        page.wait_for_function("document.querySelector('#rtm-viewer-b .rtm-root').dataset.seed === '7'"
                               " && document.querySelector('#rtm-grid .rtm-groot').dataset.seeds === '4'")
        assert page.get_attribute("#rtm-viewer-b .rtm-root", "data-checkpoint") == "tiny-mlp"
        assert page.get_attribute("#rtm-viewer-b .rtm-root", "data-steps") == "1"
        assert page.locator("#rtm-grid .rtm-gcell").first.get_attribute("data-seed") == "2"
        page.wait_for_function("document.querySelector('#rtm-grid .rtm-gcells').style.gridTemplateColumns !== ''")
        width = page.evaluate("document.querySelector('#rtm-grid .rtm-gpic').getBoundingClientRect().width")
        assert width >= 16 and width % 16 == 0, width             # whole pixels of the 16 px frames: crisp
    with open_page("?checkpoint=tiny-rtm&seed=abc&steps=3") as page:                # a bad link: default view, why
        page.wait_for_function("document.body.innerText.includes(\"this link's view cannot be shown\")")
        assert "seed must be a whole number" in page.inner_text("body")
        assert page.get_attribute("#rtm-viewer .rtm-root", "data-seed") == "42"


def test_space_plays_and_the_arrows_step_outside_text_fields(loaded):
    page = loaded["page"]
    page.locator("#rtm-intro").click()                                     # focus on the page, not a field
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '2'")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-root').dataset.step === '3'")
    page.keyboard.press(" ")
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-play').textContent.includes('pause')"
                           " || document.querySelector('#rtm-viewer .rtm-root').dataset.step === '3'")
    page.wait_for_function("document.querySelector('#rtm-viewer .rtm-play').textContent.includes('play')", timeout=5000)
    page.locator("#rtm-seed input").click()                                # in a text field the keys are the field's
    page.keyboard.press("ArrowLeft")
    page.keyboard.press(" ")
    assert shown_step(page) == 3
    assert page.locator("#rtm-seed input").input_value() in ("42 ", " 42", "42")


def test_a_name_that_is_no_checkpoint_is_one_warning_and_the_form_keeps_working(loaded):
    page = loaded["page"]
    box = page.locator("#rtm-checkpoint input")
    box.click()
    box.fill("../../etc")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast-body", timeout=15_000)
    assert page.locator(".toast-body").count() == 1 and "unknown checkpoint" in page.text_content(".toast-body")
    assert page.locator(".toast-body.error").count() == 0
    assert page.locator("#rtm-steps input").is_visible()                  # no error badge in place of the box
    assert page.locator("#rtm-steps input").input_value() == "3"
    page.wait_for_function("document.querySelector('#rtm-checkpoint input').value === 'tiny-rtm'")
    generate(page, 9, 3)                                                  # and Generate still works
